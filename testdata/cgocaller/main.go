// Command cgocaller is a program built with cgo, and so dynamically
// linked against the C library, that embeds vessel: TestCgoCaller builds
// it (or is handed a build, in the qemu guest) and runs it with a busybox
// root filesystem. It runs a container, an Exec into a running one, two
// containers with spare inits and a pool's job there, and prints what
// each printed; a profile that still needs the exec stage is refused.
package main

/*
static int answer(int a, int b) { return a * b; }
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/rootfs"
)

func main() {
	vessel.Init()
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cgocaller ROOTFS")
		os.Exit(2)
	}
	root := os.Args[1]
	fmt.Printf("c says %d\n", int(C.answer(6, 7)))
	ctx := context.Background()
	cfg := func() *vessel.Config {
		return vessel.NewConfig().WithRootfs(rootfs.Dir(root)).WithHostname("cgo-box")
	}

	// A container of its own.
	c, err := vessel.New(fmt.Sprintf("cgocaller-run-%d", os.Getpid()), cfg())
	if err != nil {
		fail("new", err)
	}
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err = c.Run(ctx, "/bin/sh", "-c", `echo "run: $(hostname) pid $$ $(cat /proc/1/comm)"`)
	c.Destroy()
	if err != nil {
		fail("run: "+out.String(), err)
	}
	fmt.Print(out.String())

	// An Exec into a running one.
	c, err = vessel.New(fmt.Sprintf("cgocaller-exec-%d", os.Getpid()), cfg())
	if err != nil {
		fail("new", err)
	}
	if err := c.Start(ctx, "/bin/sleep", "60"); err != nil {
		c.Destroy()
		fail("start", err)
	}
	out.Reset()
	p, err := c.Exec(ctx, &vessel.Cmd{Args: []string{"/bin/sh", "-c", `echo "exec: $(hostname) sees $(cat /proc/1/comm) as PID 1"`}, Stdout: &out, Stderr: &out})
	if err == nil {
		err = p.Wait()
	}
	c.Destroy()
	if err != nil {
		fail("exec: "+out.String(), err)
	}
	fmt.Print(out.String())

	// With spare inits: the second container takes one started ahead.
	spares, err := vessel.NewSpares(1)
	if err != nil {
		fail("spares", err)
	}
	for i := 0; i < 2; i++ {
		c, err = vessel.New(fmt.Sprintf("cgocaller-spare-%d-%d", os.Getpid(), i), cfg())
		if err != nil {
			fail("new", err)
		}
		c.Spares = spares
		out.Reset()
		c.Stdout, c.Stderr = &out, &out
		err = c.Run(ctx, "/bin/sh", "-c", `echo "spare: $(hostname) pid $$"`)
		c.Destroy()
		if err != nil {
			fail("spare run: "+out.String(), err)
		}
		fmt.Print(out.String())
		spares.WaitReady(10 * time.Second)
	}
	fmt.Printf("spares used: %d\n", spares.Stats().Used)
	spares.Close()

	// A profile that needs the exec stage is refused before anything
	// runs, with the reason.
	c, err = vessel.New(fmt.Sprintf("cgocaller-stage-%d", os.Getpid()), cfg().WithRlimit(limits.Rlimit{Type: "RLIMIT_CPU", Soft: 10, Hard: 10}))
	if err == nil {
		err = c.Run(ctx, "/bin/true")
		c.Destroy()
	}
	var se *vessel.SetupError
	if errors.As(err, &se) && strings.Contains(se.Error(), "exec stage (rlimit RLIMIT_CPU)") {
		fmt.Println("stage: refused")
	} else {
		fmt.Printf("stage: %v\n", err)
	}

	// A pool's job: its PID 1 is vessel's idle process.
	pool, err := vessel.NewPool(cfg().WithReadOnlyRootfs(true), 1)
	if err != nil {
		fail("pool", err)
	}
	out.Reset()
	cmd := vessel.Command("/bin/sh", "-c", `echo "pool: $(hostname) PID 1 is $(cat /proc/1/comm) ($(tr -d '\000' </proc/1/cmdline))"`)
	cmd.Stdout, cmd.Stderr = &out, &out
	st, err := pool.Run(ctx, cmd)
	pool.Close()
	if err != nil {
		fail("pool job: "+out.String(), err)
	}
	fmt.Printf("%sjob exit %d\n", out.String(), st.Code)
	fmt.Println("done")
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "cgocaller: %s: %v\n", strings.TrimSpace(what), err)
	os.Exit(1)
}
