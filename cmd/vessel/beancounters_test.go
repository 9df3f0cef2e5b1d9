package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/oci"
)

// TestBeancounters runs a container through the OCI verbs with the pty
// limit and the /dev/shm size set by annotations, has the probe hit both
// from inside, and reads them back with "vessel beancounters".
func TestBeancounters(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "beancounters"
	b := bundle(t, id, []string{testutil.RootfsProbePath, "hold", "ptys=5", "devshm=4194304"}, func(s *specs.Spec) {
		s.Annotations = map[string]string{oci.AnnotationPtys: "2", oci.AnnotationShmSize: "1M"}
		s.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptrTo(int64(32))}}
	})
	cli(t, root, "run", "-d", "-b", b, id).ok(t, "run -d")
	defer cli(t, root, "delete", "--force", id)
	rec := record(t, root, id)

	var u vessel.Usage
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := cli(t, root, "beancounters", "--json", id).ok(t, "beancounters --json")
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &u))
		if b, _ := u.Get("devshm"); b.Held >= 1<<20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pty, ok := u.Get("numpty")
	require.True(t, ok)
	assert.Equal(t, uint64(2), pty.Held)
	assert.Equal(t, uint64(2), pty.Limit)
	shm, _ := u.Get("devshm")
	assert.Equal(t, uint64(1<<20), shm.Held)
	assert.Equal(t, uint64(1<<20), shm.Limit)
	tasks, _ := u.Get("numproc")
	assert.Equal(t, uint64(32), tasks.Limit)
	assert.Positive(t, tasks.Held)

	table := cli(t, root, "beancounters", id).ok(t, "beancounters").stdout
	t.Logf("\n%s", table)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	assert.Equal(t, len(u.Resources)+1, len(lines))
	assert.Contains(t, lines[0], "failcnt")
	assert.Regexp(t, `^\s*`+id+`\s+numproc\s+\d+\s+\d+\s+32\s+\d+`, lines[1])

	r := cli(t, root, "beancounters", "nosuch")
	assert.NotZero(t, r.code)
	cli(t, root, "delete", "--force", id).ok(t, "delete --force")
	assertGone(t, root, rec)
}

func ptrTo[T any](v T) *T { return &v }

// TestRunAccountFlags: run's flags for the limits without a Docker flag
// reach the container: the inode quota, /dev/shm's size, the System V
// limits, the devpts max and (through --ulimit) the pending signals.
func TestRunAccountFlags(t *testing.T) {
	testutil.RequireRoot(t)
	t.Setenv("VESSEL_CGROUP_GROUP", testutil.CgroupGroup)
	r := cliWith(t, []string{"run", "--rm", "--rootfs", testutil.BusyboxRootfs(t), "--overlay", "--disk-quota", "4M",
		"--disk-inodes", "50", "--ptys", "2", "--shm-size", "1M", "--sysv-shm", "2M:1M", "--ulimit", "sigpending=5",
		"--", "/bin/sh", "-c", "df -i / | tail -1; df /dev/shm | tail -1; cat /proc/sys/kernel/shmall /proc/sys/kernel/shmmax; ulimit -i; grep -o 'max=[0-9]*' /proc/mounts"}, nil)
	r.ok(t, "run")
	f := strings.Fields(r.stdout)
	require.Len(t, f, 16, r.stdout)
	assert.Equal(t, "50", f[1], "inodes of /")
	assert.Equal(t, "1024", f[7], "1K blocks of /dev/shm")
	assert.Equal(t, []string{"512", "1048576", "5", "max=2"}, f[12:16])

	r = cliWith(t, []string{"run", "--rm", "--disk-inodes", "5", "--", "/bin/true"}, nil)
	assert.Equal(t, 125, r.code)
	assert.Contains(t, r.stderr, "--disk-inodes needs --disk-quota")
}

// TestRunBoot boots Debian's systemd with "vessel run --boot", waits for
// the sshd it starts to be in the container's cgroup, and has SIGTERM to
// the command halt the system cleanly (exit 0) within 10 seconds.
func TestRunBoot(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.DebianSystemRoot(t)
	t.Setenv("VESSEL_CGROUP_GROUP", testutil.CgroupGroup)
	name := fmt.Sprintf("boot%d", os.Getpid())
	cmd := exec.Command(vesselBin, "run", "--rm", "--boot", "--name", name, "--rootfs", root, "--overlay", "--memory", "256M")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()

	// The container's cgroup, and below it those systemd made.
	cg := filepath.Join(testutil.GroupDirs(t, testutil.CgroupGroup)[0], name)
	sshd := false
	for end := time.Now().Add(60 * time.Second); !sshd && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, pid := range strings.Fields(string(b)) {
				if comm, _ := os.ReadFile("/proc/" + pid + "/comm"); strings.TrimSpace(string(comm)) == "sshd" {
					sshd = true
				}
			}
			return nil
		})
	}
	require.True(t, sshd, "no sshd in %s\n%s", cg, out.String())

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		done <- err
		require.NoError(t, err, "vessel run --boot after SIGTERM\n%s", out.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("systemd did not halt within 10 s of SIGTERM\n%s", out.String())
	}
}
