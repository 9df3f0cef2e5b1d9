package vessel_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
)

// TestNestedContainer starts a container that runs vessel itself (this
// test binary, in a helper mode) to start a container of its own; the
// probe in the inner container reports the expected isolation. The outer
// container has a user namespace and no extra host privilege.
func TestNestedContainer(t *testing.T) {
	_, bin := copyTestBinary(t, "vessel-nested-")
	outer := withProbe(t, newConfig().WithNesting().WithHostname("outer")).
		WithBind(bin, "/vessel.test", true).
		WithEnv("VESSEL_TEST_HELPER=nested")
	c, err := vessel.New(newID(t), outer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(context.Background(), "/vessel.test", "-test.run=^$"); err != nil {
		t.Fatalf("outer container: %v\nstdout: %s\nstderr: %s", err, out.String(), errb.String())
	}
	inner := testutil.MustParseReport(t, out.Bytes())
	outerNS := map[string]uint64{}
	if i := strings.Index(errb.String(), "outer-ns "); i >= 0 {
		for _, kv := range strings.Fields(errb.String()[i+len("outer-ns "):]) {
			var k string
			var v uint64
			if n, _ := fmt.Sscanf(strings.Replace(kv, "=", " ", 1), "%s %d", &k, &v); n == 2 {
				outerNS[k] = v
			}
		}
	}
	// The inner probe is PID 1 of its own pid namespace: its parent (the
	// inner container's init) is outside it.
	if inner.Hostname != "inner" || inner.PPID != 0 || inner.PID != 1 {
		t.Fatalf("inner container: hostname %q ppid %d", inner.Hostname, inner.PPID)
	}
	for _, k := range []string{"pid", "mnt", "uts", "ipc", "net"} {
		if outerNS[k] == 0 || inner.Namespaces[k] == outerNS[k] || inner.Namespaces[k] == hostNS(t, k) {
			t.Errorf("%s namespace: inner %d, outer %d, host %d", k, inner.Namespaces[k], outerNS[k], hostNS(t, k))
		}
	}
	// Container root inside both is host id 100000: never host root.
	if len(inner.UIDMap) != 1 || inner.UIDMap[0].Outside != 100000 || inner.UID != 0 {
		t.Fatalf("inner uid map %+v, uid %d", inner.UIDMap, inner.UID)
	}
	if !strings.Contains(errb.String(), "no cgroup") {
		t.Errorf("the inner container's missing cgroup was not reported: %s", errb.String())
	}
}

// runNestedHelper runs inside the outer container: it starts the inner
// container and prints the probe's report from inside it.
func runNestedHelper() int {
	self := map[string]uint64{}
	for _, k := range []string{"pid", "mnt", "uts", "ipc", "net"} {
		var st = new(fileStat)
		if st.of("/proc/self/ns/" + k) {
			self[k] = st.ino
		}
	}
	var b strings.Builder
	for k, v := range self {
		fmt.Fprintf(&b, "%s=%d ", k, v)
	}
	fmt.Fprintln(os.Stderr, "outer-ns "+b.String())
	// The probe is a file the outer container got at its top level, which
	// a host root shows only when bound explicitly.
	cfg := vessel.NewConfig().WithHostname("inner").WithBind("/probe", "/probe", true)
	c, err := vessel.New("inner", cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Destroy()
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Start(context.Background(), "/probe", "report"); err != nil {
		fmt.Fprintln(os.Stderr, "inner start:", err)
		return 1
	}
	for _, w := range c.Warnings() {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if err := c.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "inner:", err)
		return 1
	}
	return 0
}
