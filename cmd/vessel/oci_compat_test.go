package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/oci"
)

// runInside runs a foreground container whose shell script prints what the
// test checks, and returns its stdout; the run must succeed.
func runInside(t *testing.T, root, id, script string, edit func(*specs.Spec)) string {
	t.Helper()
	b := bundle(t, id, []string{"sh", "-c", script}, edit)
	r := cli(t, root, "run", "--bundle", b, id)
	require.Equal(t, 0, r.code, "run %s: stderr %s\nstdout %s", id, r.stderr, r.stdout)
	return r.stdout
}

// TestOCISpecFieldsAsRunc runs bundles with the spec fields runc honours and
// vessel used to refuse, and checks from inside the container that each is
// applied as runc applies it.
func TestOCISpecFieldsAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)

	t.Run("stacked mounts", func(t *testing.T) {
		// containerd's sandbox: the standard /dev/shm tmpfs, then a bind
		// of the sandbox's shm on it; and two mounts of the spec's own on
		// one destination, applied in order.
		shm, top := t.TempDir(), t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(shm, "marker"), []byte("sandbox-shm\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(top, "size"), []byte("top\n"), 0o644))
		out := runInside(t, root, "stacked", "cat /dev/shm/marker; cat /data/size; grep -c ' /data ' /proc/self/mountinfo", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind", "ro"}},
				specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
				specs.Mount{Destination: "/data", Type: "bind", Source: top, Options: []string{"bind"}},
			)
		})
		assert.Equal(t, "sandbox-shm\ntop\n2\n", out, "the bind is on top of the tmpfs, both mounted")
	})

	t.Run("devices", func(t *testing.T) {
		// What podman --privileged and --device ask: nodes with their
		// modes and owners, usable through the device cgroup.
		out := runInside(t, root, "devices", "stat -c '%F %t:%T %a %u:%g' /dev/fuse /dev/myfifo /dev/loop-ctl; : < /dev/fuse && echo opened", func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: ptrTo(os.FileMode(0o666)), UID: ptrTo(uint32(7)), GID: ptrTo(uint32(8))},
				{Path: "/dev/myfifo", Type: "p", FileMode: ptrTo(os.FileMode(0o640))},
				{Path: "/dev/loop-ctl", Type: "c", Major: 10, Minor: 237},
				{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
			}
		})
		assert.Equal(t, "character special file a:e5 666 7:8\nfifo 0:0 640 0:0\ncharacter special file a:ed 666 0:0\nopened\n", out)
	})

	t.Run("tmpcopyup on a read-only root", func(t *testing.T) {
		// podman --read-only: a tmpfs over /etc filled with what /etc held.
		out := runInside(t, root, "copyup", "grep -c '^root:' /etc/passwd; touch /etc/new && echo writable; grep ' /etc ' /proc/self/mountinfo | grep -c tmpfs; stat -c %a /etc", func(s *specs.Spec) {
			s.Root.Readonly = true
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "tmpcopyup"}})
		})
		assert.Equal(t, "1\nwritable\n1\n755\n", out)
	})

	t.Run("rootfs propagation", func(t *testing.T) {
		out := runInside(t, root, "propshared", "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo", func(s *specs.Spec) {
			s.Linux.RootfsPropagation = "shared"
		})
		assert.Contains(t, out, " shared:", "a shared root mount")
		out = runInside(t, root, "propprivate", "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo", func(s *specs.Spec) {
			s.Linux.RootfsPropagation = "private"
		})
		assert.NotContains(t, out, "shared:")
		assert.NotContains(t, out, "master:")
	})

	t.Run("bind with data options", func(t *testing.T) {
		src := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(src, "f"), []byte("bound\n"), 0o644))
		out := runInside(t, root, "binddata", "cat /b/f", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/b", Type: "bind", Source: src, Options: []string{"rbind", "mode=755", "size=65536k"}})
		})
		assert.Equal(t, "bound\n", out)
	})

	t.Run("runc spec default bundle", func(t *testing.T) {
		runc, err := exec.LookPath("runc")
		require.NoError(t, err, "runc is in test.sh's package list")
		dir := t.TempDir()
		cmd := exec.Command(runc, "spec")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "runc spec: %s", out)
		spec, err := oci.LoadSpec(dir)
		require.NoError(t, err)
		spec.Root.Path = testutil.BusyboxRootfsCopy(t)
		spec.Process.Terminal = false
		spec.Process.Args = []string{"sh", "-c", "grep CapAmb /proc/self/status"}
		spec.Linux.CgroupsPath = "vessel-test/runcspec"
		require.NoError(t, os.Remove(filepath.Join(dir, "config.json")))
		require.NoError(t, oci.WriteSpec(dir, spec))
		r := cli(t, root, "run", "--bundle", dir, "runcspec")
		require.Equal(t, 0, r.code, "stderr %s", r.stderr)
		// runc raises the ambient set where the kernel allows: nothing,
		// since runc spec writes no inheritable set.
		assert.Equal(t, "CapAmb:\t0000000000000000\n", r.stdout)
	})
}

// TestOCICgroupKnobsAsRunc checks the cgroup files runc writes for cpu
// shares, swappiness and the OOM killer, on this host's hierarchy.
func TestOCICgroupKnobsAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "knobs"
	b := bundle(t, id, []string{"sleep", "100"}, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{
			CPU:    &specs.LinuxCPU{Shares: ptrTo(uint64(512))},
			Memory: &specs.LinuxMemory{Limit: ptrTo(int64(64 << 20)), Swappiness: ptrTo(uint64(10)), DisableOOMKiller: ptrTo(true), Kernel: ptrTo(int64(32 << 20))},
		}
	})
	log := filepath.Join(t.TempDir(), "log.json")
	r := cliWith(t, []string{"--root", root, "--log", log, "--log-format", "json", "run", "--detach", "--bundle", b, id}, nil)
	require.Equal(t, 0, r.code, "run: %s", r.stderr)
	rec := record(t, root, id)
	defer func() {
		cli(t, root, "delete", "--force", id).ok(t, "delete")
		assertGone(t, root, rec)
	}()
	logText, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Contains(t, string(logText), "linux.resources.memory.kernel", "the ignored kernel limit is logged as a warning")
	assert.Contains(t, string(logText), `"level":"warning"`)
	if hasCgroupFile(rec.CgroupState.Dirs, "cpu.shares") { // cgroup v1 cpu (this machine)
		assert.Equal(t, "512", cgroupFile(t, rec, "cpu.shares"), "written as runc writes it")
	} else {
		assert.Equal(t, "20", cgroupFile(t, rec, "cpu.weight"), "runc's conversion of 512 shares")
	}
	if hasCgroupFile(rec.CgroupState.Dirs, "memory.swappiness") { // cgroup v1 memory
		assert.Equal(t, "10", cgroupFile(t, rec, "memory.swappiness"))
		assert.Contains(t, cgroupFile(t, rec, "memory.oom_control"), "oom_kill_disable 1")
	}
}

func hasCgroupFile(dirs map[string]string, name string) bool {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return true
		}
	}
	return false
}

func ptrTo[T any](v T) *T { return &v }
