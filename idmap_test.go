package vessel_test

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// TestIDMappedRootfs: a rootfs owned by host root, in a container whose
// root is host id 300000, appears owned by container root through an
// idmapped mount, and files written inside land on disk as host root's;
// without idmapping the same files appear owned by nobody.
func TestIDMappedRootfs(t *testing.T) {
	root := testutil.BusyboxRootfsCopy(t)
	maps := []namespaces.IDMap{{ContainerID: 0, HostID: 300000, Size: 65536}}
	plain := newConfig().WithUserNamespace(maps, maps).WithRootfs(rootfs.Dir(root))
	out, err := run(t, plain, "/bin/sh", "-c", "stat -c '%u:%g' /bin/busybox")
	if err != nil || strings.TrimSpace(out) != "65534:65534" {
		t.Fatalf("without idmap: %v %q, want the overflow id", err, out)
	}
	r := rootfs.Dir(root)
	r.IDMap = true
	data := t.TempDir()
	bind := rootfs.Bind(data, "/data")
	bind.IDMap = true
	cfg := newConfig().WithUserNamespace(maps, maps).WithRootfs(r).WithMount(bind)
	out, err = run(t, cfg, "/bin/sh", "-c", "stat -c '%u:%g' /bin/busybox; id -u; echo hi > /created; echo x > /data/f")
	var st unix.Statfs_t
	unix.Statfs(root, &st)
	if st.Type == unix.TMPFS_MAGIC && !kernelAtLeast(6, 3) {
		// Kernels before 6.3 cannot idmap tmpfs (the qemu guest's /tmp):
		// the start must fail with an error that says so.
		if err == nil || !strings.Contains(err.Error(), "cannot idmap") {
			t.Fatalf("idmapped tmpfs on an old kernel: got %v, want a clear refusal", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if f := strings.Fields(out); len(f) != 2 || f[0] != "0:0" || f[1] != "0" {
		t.Fatalf("with idmap: %q, want 0:0 and uid 0", out)
	}
	for _, p := range []string{root + "/created", data + "/f"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Fatalf("%s is owned by %d:%d on the host, want 0:0 (host root)", p, st.Uid, st.Gid)
		}
	}
}
