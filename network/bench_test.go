package network

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
)

// BenchmarkSetupTeardown measures one Setup+Teardown of a container that
// already runs in its own namespace. The bridge case keeps another
// container on the bridge, so the bridge and table already exist (the
// common case); the loopback case only brings lo up.
func BenchmarkSetupTeardown(b *testing.B) {
	for _, mode := range []Mode{ModeBridge, ModeLoopback} {
		b.Run(string(mode), func(b *testing.B) {
			e := newEnv(b)
			cfg := &Config{Mode: mode}
			if mode == ModeBridge {
				cfg = e.bridgeConfig()
				anchor := startContainer(b)
				e.setup(b, "anchor", e.bridgeConfig(), anchor.pid)
			}
			c := startContainer(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a, err := e.m.Setup(context.Background(), fmt.Sprintf("bench%d", i), cfg, c.pid)
				if err != nil {
					b.Fatal(err)
				}
				if err := a.Teardown(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkThroughput copies a TCP stream in-process between two containers
// on a bridge, and over the host's loopback for comparison.
func BenchmarkThroughput(b *testing.B) {
	const chunk = 64 << 10
	run := func(b *testing.B, server net.Listener, dial func() (net.Conn, error)) {
		done := make(chan int64)
		go func() {
			c, err := server.Accept()
			if err != nil {
				done <- -1
				return
			}
			n, _ := io.Copy(io.Discard, c)
			c.Close()
			done <- n
		}()
		conn, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, chunk)
		b.SetBytes(chunk)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := conn.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		conn.Close()
		if n := <-done; n != int64(b.N)*chunk {
			b.Fatalf("received %d of %d bytes", n, int64(b.N)*chunk)
		}
	}
	b.Run("container-to-container", func(b *testing.B) {
		e := newEnv(b)
		ca, cb := startContainer(b), startContainer(b)
		a := e.setup(b, "tp-a", e.bridgeConfig(), ca.pid)
		e.setup(b, "tp-b", e.bridgeConfig(), cb.pid)
		var l net.Listener
		must(b, inNs(b, ca.pid, func() (err error) { l, err = net.Listen("tcp4", ":0"); return err }))
		defer l.Close()
		target := net.JoinHostPort(addrOf(b, a).String(), fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
		run(b, l, func() (c net.Conn, err error) {
			err = inNs(b, cb.pid, func() (err error) { c, err = net.Dial("tcp4", target); return err })
			return c, err
		})
	})
	b.Run("loopback", func(b *testing.B) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		run(b, l, func() (net.Conn, error) { return net.Dial("tcp4", l.Addr().String()) })
	})
}
