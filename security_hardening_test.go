package vessel_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/rootfs"
)

// Escape battery, second part: the hardening of issue #24. Each test
// checks what the host (or a probe inside) sees.

// configError returns the *ConfigError of field in err, failing when
// there is none.
func configError(t *testing.T, err error, field string) *vessel.ConfigError {
	t.Helper()
	require.Error(t, err)
	for _, e := range unjoinErr(err) {
		var ce *vessel.ConfigError
		if errors.As(e, &ce) && ce.Field == field {
			return ce
		}
	}
	t.Fatalf("no ConfigError for %s in %v", field, err)
	return nil
}

func unjoinErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestHostnameInjectionRefused: a host or domain name that is not an RFC
// 1123 name is refused by New, naming the field, so that nothing can be
// injected into /etc/hostname or /etc/hosts; a valid name reaches both.
func TestHostnameInjectionRefused(t *testing.T) {
	for _, h := range []string{"a/b\nc", "a b", "evil\n1.2.3.4 bank", "-x", "x..y", strings.Repeat("a", 65)} {
		_, err := vessel.New(newID(t), newConfig().WithHostname(h))
		ce := configError(t, err, "hostname")
		assert.NotEmpty(t, ce.Reason)
		_, err = vessel.New(newID(t), newConfig().WithDomainname(h))
		configError(t, err, "domainname")
	}
	out, err := run(t, newConfig().WithHostname("good-name.example"), "/bin/sh", "-c", "hostname; cat /etc/hostname; grep -c good-name.example /etc/hosts")
	require.NoError(t, err, out)
	assert.Equal(t, "good-name.example\ngood-name.example\n1\n", out)
}

// TestTinyMemoryLimitRefused: a memory limit a container cannot start in
// is refused by New naming the field and the minimum, instead of a start
// that dies with a protocol error.
func TestTinyMemoryLimitRefused(t *testing.T) {
	for _, v := range []int64{1, 1 << 20} {
		_, err := vessel.New(newID(t), newConfig().WithMemoryLimit(v))
		ce := configError(t, err, "resources.memory.limit")
		assert.Contains(t, ce.Reason, "6291456")
	}
	out, err := run(t, newConfig().WithMemoryLimit(16<<20), "/bin/true")
	require.NoError(t, err, out)
}

// TestMountInsideProcRefused: a volume inside /proc or /sys is refused at
// New, and a bind whose destination reaches /proc through a symlink in the
// root filesystem fails the start; the host's /proc/sys is untouched.
func TestMountInsideProcRefused(t *testing.T) {
	src := t.TempDir()
	for _, dst := range []string{"/proc/sys/kernel", "/proc/sys", "/sys/kernel/mm"} {
		_, err := vessel.New(newID(t), newConfig().WithBind(src, dst, true))
		ce := configError(t, err, "mounts[0].destination")
		assert.Contains(t, ce.Reason, "inside")
	}
	root := testutil.BusyboxRootfsCopy(t)
	require.NoError(t, os.Symlink("/proc/sys/kernel", filepath.Join(root, "kern")))
	require.NoError(t, os.WriteFile(filepath.Join(src, "hostname"), []byte("pwned\n"), 0o644))
	out, err := run(t, newConfig().WithRootfs(rootfs.Dir(root)).WithBind(src, "/kern", false), "/bin/sh", "-c", "cat /proc/sys/kernel/hostname")
	require.Error(t, err, "a bind through a symlink into /proc was mounted: %s", out)
	t.Logf("start refused: %v", err)
	var se *vessel.SetupError
	if assert.ErrorAs(t, err, &se) {
		assert.Contains(t, se.Error(), "inside /proc or /sys")
	}
}

// TestTIOCSTIAndTIOCLINUXRefused: the default profile refuses TIOCSTI
// (also with bits above the 32 the kernel reads) and TIOCLINUX with
// EPERM, on a terminal the kernel would let the caller use (a pty that
// is the probe child's controlling terminal); without a filter the same
// TIOCSTI succeeds, so the refusal is the profile's.
func TestTIOCSTIAndTIOCLINUXRefused(t *testing.T) {
	steps := []probeStep{tryStep("tiocsti", "tiocsti"), tryStep("tiocsti-high", "tiocsti", "high"), tryStep("tioclinux", "tioclinux")}
	for _, cfg := range []*vessel.Config{newConfig(), newConfig().WithTTY(true)} {
		res := runSteps(t, withProbe(t, cfg), "/probe", steps)
		for _, s := range steps {
			r := tryOf(t, res, s.name)
			t.Logf("%s: %s", s.name, describeTry(r))
			testutil.AssertDenied(t, r, unix.EPERM)
		}
	}
	res := runSteps(t, withProbe(t, newConfig().WithSeccomp(nil)), "/probe", steps[:1])
	testutil.AssertAllowed(t, tryOf(t, res, "tiocsti"))
}

// selfExeScripts writes into root the files through which a container
// process could name the executable of the process that execve()s it,
// and returns the argv[0]s that run them: #!/proc/self/exe (and
// thread-self), /proc/self/exe itself, a script whose interpreter is such
// a script, and a symlink to /proc/self/exe as the interpreter.
func selfExeScripts(t *testing.T, root string) []string {
	t.Helper()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(body), 0o755))
	}
	write("selfexe.sh", "#!/proc/self/exe\n")
	write("threadself.sh", "#!/proc/thread-self/exe\n")
	write("chained.sh", "#!/selfexe.sh\n")
	require.NoError(t, os.Symlink("/proc/self/exe", filepath.Join(root, "selflink")))
	write("linked.sh", "#!/selflink\n")
	return []string{"/selfexe.sh", "/threadself.sh", "/chained.sh", "/linked.sh", "/proc/self/exe", "/selflink"}
}

// assertExecNotFound checks that starting argv0 failed in its execve with
// ENOENT, as runc's exec of the same file does ("exec /selfexe.sh: no such
// file or directory"), and that nothing ran: no exit status, no output
// (the vessel binary, had it started, says it refuses).
func assertExecNotFound(t *testing.T, what, argv0 string, err error, out string) {
	t.Helper()
	require.Error(t, err, "%s ran: %q", what, out)
	var se *vessel.SetupError
	require.True(t, errors.As(err, &se), "%s: %T %v, want a SetupError of the exec", what, err, err)
	assert.Equal(t, "exec", se.Step, what)
	assert.ErrorIs(t, err, unix.ENOENT, what)
	assert.Equal(t, "exec "+argv0+": no such file or directory", se.Error(), what)
	assert.Empty(t, out, what)
}

// TestProcSelfExeInterpreterNotFound: a file whose interpreter names the
// executable of the process that runs it (#!/proc/self/exe and the like),
// and /proc/self/exe itself, started as the main process, by Exec and as
// a pooled job, with the direct start and with the exec stage (which the
// created state of an OCI container uses), fail in execve with ENOENT, as
// under runc: the processes vessel forks are the shim until their execve,
// never the vessel binary (cmd/vessel's TestOCIExecSelfExeAsRunc runs the
// same through the OCI exec and runc). And nothing in the container holds
// or names the vessel binary: no process's exe, no descriptor.
func TestProcSelfExeInterpreterNotFound(t *testing.T) {
	root := testutil.BusyboxRootfsCopy(t)
	argv0s := selfExeScripts(t, root)
	// An rlimit the init cannot carry itself makes every start go
	// through the exec stage.
	stage := limits.Rlimit{Type: "RLIMIT_CPU", Soft: 1000, Hard: 1000}
	for _, mode := range []string{"direct", "stage", "userns stage"} {
		cfg := func() *vessel.Config {
			cfg := newConfig().WithRootfs(rootfs.Dir(root))
			if mode != "direct" {
				cfg.WithRlimit(stage)
			}
			if mode == "userns stage" {
				cfg.WithUserNamespace(usernsRanges(), usernsRanges())
			}
			return cfg
		}
		for _, a := range argv0s {
			out, err := run(t, cfg(), a)
			assertExecNotFound(t, mode+": main "+a, a, err, out)
		}
		c, err := vessel.New(newID(t), cfg())
		require.NoError(t, err)
		t.Cleanup(func() { c.Destroy() })
		require.NoError(t, c.Start(context.Background(), "/bin/sleep", "100"))
		for _, a := range argv0s {
			var out bytes.Buffer
			cmd := vessel.Command(a)
			cmd.Stdout, cmd.Stderr = &out, &out
			p, err := c.Exec(context.Background(), cmd)
			if err == nil {
				err = p.Wait()
			}
			assertExecNotFound(t, mode+": exec "+a, a, err, out.String())
		}
		// What the container's processes are and hold: busybox and the
		// probe, never the vessel binary (a detached mount reads "/",
		// its memfd copy and the shim "/memfd:vessel...").
		var out bytes.Buffer
		cmd := vessel.Command("/bin/sh", "-c", `for p in /proc/[0-9]*; do echo "exe $(readlink $p/exe)"; for f in $p/fd/*; do echo "fd $f $(readlink $f)"; done; done; `+testutil.RootfsProbePath+` report`)
		cmd.Stdout, cmd.Stderr = &out, &out
		p, err := c.Exec(context.Background(), cmd)
		require.NoError(t, err)
		require.NoError(t, p.Wait(), out.String())
		exes := 0
		for _, l := range strings.Split(out.String(), "\n") {
			if !strings.HasPrefix(l, "exe ") && !strings.HasPrefix(l, "fd ") {
				continue
			}
			if strings.HasPrefix(l, "exe ") {
				exes++
				assert.Contains(t, []string{"exe /bin/busybox"}, l, "%s: a process of the container runs something else", mode)
			}
			assert.NotContains(t, l, "vessel", mode)
			assert.False(t, strings.HasSuffix(l, " /"), "%s: %s names a detached mount", mode, l)
		}
		assert.GreaterOrEqual(t, exes, 2, "%s: sleep and the shell, at least: %s", mode, out.String())
		r := testutil.MustParseReport(t, out.Bytes())
		assert.Equal(t, testutil.RootfsProbePath, r.Exe, mode)
		for fd, target := range r.FDs {
			assert.Less(t, fd, 3, "%s: the probe inherited descriptor %d (%s)", mode, fd, target)
		}
		// A pooled job goes through Exec in a container whose PID 1 is
		// vessel's idle process (forked by the init, or the exec stage
		// itself). (The pool's root, made by root, has no mount points a
		// user namespace could create.)
		if mode == "userns stage" {
			continue
		}
		pcfg := poolConfig(t)
		if mode != "direct" {
			pcfg.WithRlimit(stage)
		}
		pool := newPool(t, pcfg, 1)
		var pout bytes.Buffer
		pcmd := vessel.Command("/proc/self/exe")
		pcmd.Stdout, pcmd.Stderr = &pout, &pout
		_, err = pool.Run(context.Background(), pcmd)
		assertExecNotFound(t, mode+": pool job /proc/self/exe", "/proc/self/exe", err, pout.String())
		jout, st := poolSh(t, pool, `readlink /proc/1/exe || echo unreadable; ls /proc/self/fd/`)
		require.True(t, st.Success(), jout)
		assert.Equal(t, "unreadable\n0\n1\n2\n3\n", jout, mode+": the idle PID 1's exe out of reach; the job's descriptors")
	}
}

// TestStageShimIgnoresContainerProc: the exec stage's shim names its
// interpreter (the vessel binary) through a procfs of the forked child's
// own, not through the container's /proc, which a container that may
// mount can replace: with an ELF planted at /proc/self/fd/N (N the shim's
// descriptor), an Exec through the stage still runs the stage and then
// the program asked for, and the planted file never runs.
func TestStageShimIgnoresContainerProc(t *testing.T) {
	for _, userns := range []bool{false, true} {
		root := testutil.BusyboxRootfsCopy(t)
		cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithCapAdd("SYS_ADMIN").
			WithRlimit(limits.Rlimit{Type: "RLIMIT_CPU", Soft: 1000, Hard: 1000})
		if userns {
			cfg.WithUserNamespace(usernsRanges(), usernsRanges())
		}
		t.Run(map[bool]string{false: "host ids", true: "user namespace"}[userns], func(t *testing.T) {
			stageIgnoresPlantedProc(t, cfg)
		})
	}
}

func stageIgnoresPlantedProc(t *testing.T, cfg *vessel.Config) {
	c, err := vessel.New(newID(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Destroy() })
	var mainOut syncBuffer
	c.Stdout, c.Stderr = &mainOut, &mainOut
	// Every descriptor number a shim could name, planted.
	plant := `mount -t tmpfs planted /proc && mkdir -p /proc/self/fd /proc/thread-self/fd &&
		for n in $(seq 990 1010); do cp /bin/busybox /proc/self/fd/$n; cp /bin/busybox /proc/thread-self/fd/$n; done &&
		echo planted && exec sleep 100`
	require.NoError(t, c.Start(context.Background(), "/bin/sh", "-c", plant))
	require.Eventually(t, func() bool { return strings.Contains(mainOut.String(), "planted") }, 10*time.Second, 20*time.Millisecond, "main: %s", mainOut.String())
	for i := 0; i < 3; i++ {
		var out bytes.Buffer
		cmd := vessel.Command("/bin/echo", "ok")
		cmd.Stdout, cmd.Stderr = &out, &out
		p, err := c.Exec(context.Background(), cmd)
		require.NoError(t, err, out.String())
		require.NoError(t, p.Wait(), out.String())
		assert.Equal(t, "ok\n", out.String(), "the planted busybox ran as the stage's interpreter?")
	}
}

// hostEndpoints makes, in a new directory under parent, a listening unix
// socket and a FIFO (held open for reading and writing by the test, so an
// open for writing from a container would not block). It returns their
// paths and a function giving how many connections the socket accepted.
func hostEndpoints(t *testing.T, parent string) (sock, fifo string, accepted func() int) {
	t.Helper()
	dir, err := os.MkdirTemp(parent, "vessel-sec-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, fifo = filepath.Join(dir, "sock"), filepath.Join(dir, "fifo")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	require.NoError(t, unix.Mkfifo(fifo, 0o644))
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return sock, fifo, func() int { return int(n.Load()) }
}

// TestHostRootHidesSocketsFIFOsSecrets: a container on the default root
// (the host's files) reaches no host unix socket or FIFO under /tmp or
// /var/tmp, and reads nothing of /etc/shadow; the host sees no
// connection. As a control, the same socket and FIFO bound into the
// container explicitly are reachable, so the probe's checks can succeed.
func TestHostRootHidesSocketsFIFOsSecrets(t *testing.T) {
	// The qemu guest's initramfs has no /etc/shadow: there the container
	// must read nothing of it either.
	if shadow, err := os.ReadFile("/etc/shadow"); err == nil {
		require.Contains(t, string(shadow), "root:", "the host's /etc/shadow has no root entry to look for")
	} else {
		require.ErrorIs(t, err, fs.ErrNotExist)
	}
	var steps []probeStep
	type endpoint struct {
		sock, fifo string
		accepted   func() int
	}
	var eps []endpoint
	for _, parent := range []string{"/tmp", "/var/tmp"} {
		sock, fifo, accepted := hostEndpoints(t, parent)
		eps = append(eps, endpoint{sock, fifo, accepted})
		steps = append(steps, tryStep("connect "+sock, "connect-unix", sock), tryStep("fifo "+fifo, "open", fifo, "w"))
	}
	steps = append(steps, tryStep("shadow", "read-root", "/etc/shadow"), tryStep("gshadow", "read-root", "/etc/gshadow"),
		tryStep("var", "read-root", "/var"), tryStep("home", "read-root", "/home"), tryStep("root", "read-root", "/root"))
	res := runSteps(t, withProbe(t, newConfig()), "/probe", steps)
	for _, ep := range eps {
		for _, name := range []string{"connect " + ep.sock, "fifo " + ep.fifo} {
			r := tryOf(t, res, name)
			t.Logf("%s: %s", name, describeTry(r))
			testutil.AssertDenied(t, r, unix.ENOENT, unix.EACCES, unix.EPERM)
		}
		assert.Zero(t, ep.accepted(), "the host socket %s accepted a connection from the container", ep.sock)
	}
	for _, name := range []string{"shadow", "gshadow"} {
		r := tryOf(t, res, name)
		t.Logf("%s: %s", name, describeTry(r))
		assert.NotContains(t, r.Data, "root:", "the host's /etc/%s is readable", name)
		assert.Empty(t, r.Data)
	}
	for _, name := range []string{"var", "home", "root"} {
		r := tryOf(t, res, name)
		assert.NotContains(t, r.Data, "vessel-sec-", "/%s shows the host's", name)
		if name != "var" {
			assert.Empty(t, r.Data, "/%s is not empty", name)
		}
	}

	// Control: bound explicitly, the same endpoints are reachable.
	ep := eps[1]
	cfg := withProbe(t, newConfig()).WithBind(filepath.Dir(ep.sock), "/ep", false)
	res = runSteps(t, cfg, "/probe", []probeStep{tryStep("connect", "connect-unix", "/ep/sock"), tryStep("fifo", "open", "/ep/fifo", "w")})
	testutil.AssertAllowed(t, tryOf(t, res, "connect"))
	testutil.AssertAllowed(t, tryOf(t, res, "fifo"))
	assert.Eventually(t, func() bool { return ep.accepted() == 1 }, 5*time.Second, 10*time.Millisecond)
}
