package oci

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
)

func hostNamespace(t *testing.T, kind string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/"+kind, &st); err != nil {
		t.Fatalf("stat /proc/self/ns/%s: %v", kind, err)
	}
	return st.Ino
}

// TestDefaultSpecRuns writes the default spec into a bundle, loads it,
// converts it and runs the probe in a real container, checking from the
// inside that what the spec asks for is what the container got.
func TestDefaultSpecRuns(t *testing.T) {
	testutil.RequireRoot(t)
	bundle := t.TempDir()
	s := DefaultSpec()
	s.Root.Path = testutil.BusyboxRootfsCopy(t)
	s.Process.Terminal = false
	s.Process.Args = []string{testutil.RootfsProbePath, "report"}
	s.Hostname = "oci-spec"
	// Relative: below the test group (VESSEL_CGROUP_GROUP, see TestMain).
	s.Linux.CgroupsPath = fmt.Sprintf("oci-%d", os.Getpid())
	if err := WriteSpec(bundle, s); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := FromSpec(loaded, bundle)
	if err != nil {
		t.Fatal(err)
	}
	c, err := vessel.New(fmt.Sprintf("oci-default-%d", os.Getpid()), cfg)
	if err != nil {
		t.Fatalf("vessel.New: %v", err)
	}
	defer func() {
		if err := c.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	}()
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	r := testutil.MustParseReport(t, stdout.Bytes())

	if r.Hostname != "oci-spec" {
		t.Errorf("hostname = %q, want oci-spec", r.Hostname)
	}
	for _, kind := range []string{"pid", "net", "ipc", "uts", "mnt", "cgroup"} {
		if r.Namespaces[kind] == 0 || r.Namespaces[kind] == hostNamespace(t, kind) {
			t.Errorf("%s namespace %d: want a new one (host %d)", kind, r.Namespaces[kind], hostNamespace(t, kind))
		}
	}
	for _, kind := range []string{"user", "time"} {
		if r.Namespaces[kind] != hostNamespace(t, kind) {
			t.Errorf("%s namespace %d: the spec does not list it, want the host's %d", kind, r.Namespaces[kind], hostNamespace(t, kind))
		}
	}
	rootRO := false
	for _, m := range r.Mounts {
		if m.MountPoint == "/" {
			rootRO = m.ReadOnly
		}
	}
	if !rootRO {
		t.Error("root.readonly is true but / is writable")
	}
	want := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	for name, set := range map[string][]string{
		"bounding": r.Capabilities.Bounding.Names, "effective": r.Capabilities.Effective.Names, "permitted": r.Capabilities.Permitted.Names,
	} {
		got := slices.Sorted(slices.Values(set))
		if !slices.Equal(got, want) && !slices.Equal(normCaps(got), want) {
			t.Errorf("%s capabilities = %v, want %v", name, got, want)
		}
	}
	if len(r.Capabilities.Inheritable.Names) != 0 || len(r.Capabilities.Ambient.Names) != 0 {
		t.Errorf("inheritable %v ambient %v, want none", r.Capabilities.Inheritable.Names, r.Capabilities.Ambient.Names)
	}
	if !r.NoNewPrivs {
		t.Error("noNewPrivileges is true but no_new_privs is not set")
	}
	if r.Seccomp != 0 {
		t.Errorf("the spec has no seccomp filter, but the process has seccomp mode %d", r.Seccomp)
	}
	if rl := r.Rlimits["RLIMIT_NOFILE"]; rl.Cur != 1024 || rl.Max != 1024 {
		t.Errorf("RLIMIT_NOFILE = %+v, want 1024:1024", rl)
	}
}

func normCaps(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "CAP_" + string(bytes.ToUpper([]byte(n)))
	}
	slices.Sort(out)
	return out
}
