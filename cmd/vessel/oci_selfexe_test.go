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
)

// selfExeFiles writes into a bundle's root the files that name the
// executable of the process that execve()s them.
func selfExeFiles(t *testing.T) func(*specs.Spec) {
	return func(s *specs.Spec) {
		for name, body := range map[string]string{
			"selfexe.sh": "#!/proc/self/exe\n",
			"chained.sh": "#!/selfexe.sh\n",
		} {
			require.NoError(t, os.WriteFile(filepath.Join(s.Root.Path, name), []byte(body), 0o755))
		}
	}
}

// TestOCIExecSelfExeAsRunc is the escape battery's #!/proc/self/exe
// through the OCI verbs, beside runc: a script whose interpreter is
// /proc/self/exe, one whose interpreter is such a script, and
// /proc/self/exe itself, run as the main process (run) and by exec, fail
// in execve with ENOENT under both, with the same message (and exit code
// for run), and nothing else runs (the vessel binary, had it started, would say it
// refuses). runc 1.1.5 fails so because it is dynamically linked and the
// busybox root has no ld.so; vessel because the processes it forks are the
// shim until their execve, whose interpreter no container process holds.
func TestOCIExecSelfExeAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	runc, err := exec.LookPath("runc")
	require.NoError(t, err, "runc is in test.sh's package list")
	argv0s := []string{"/selfexe.sh", "/chained.sh", "/proc/self/exe"}

	// runc runs its own bundles, in a --root of its own.
	runcRoot := t.TempDir()
	// Output goes to files: a detached container keeps its stdio open.
	runcCmd := func(args ...string) result {
		t.Helper()
		dir := t.TempDir()
		so, err := os.Create(filepath.Join(dir, "stdout"))
		require.NoError(t, err)
		defer so.Close()
		se, err := os.Create(filepath.Join(dir, "stderr"))
		require.NoError(t, err)
		defer se.Close()
		cmd := exec.Command(runc, append([]string{"--root", runcRoot}, args...)...)
		cmd.Stdout, cmd.Stderr = so, se
		err = cmd.Run()
		a, _ := os.ReadFile(so.Name())
		b, _ := os.ReadFile(se.Name())
		r := result{stdout: string(a), stderr: string(b)}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("runc %v: %v", args, err)
		}
		return r
	}
	// The exit codes of exec differ: vessel's exec says 255 for any
	// process that could not start (as runc does for a missing program),
	// runc 1 for an execve that fails once its init runs.
	type runtime struct {
		name     string
		run      func(id, bundle string) result
		exec     func(id, argv0 string) result
		execCode int
	}
	root := testRoot(t)
	runtimes := []runtime{
		{"vessel",
			func(id, b string) result { return cli(t, root, "run", "--bundle", b, id) },
			func(id, a string) result { return cli(t, root, "exec", id, a) }, 255},
		{"runc",
			func(id, b string) result { return runcCmd("run", "--bundle", b, id) },
			func(id, a string) result { return runcCmd("exec", id, a) }, 1},
	}
	check := func(what, argv0 string, r result, code int) {
		t.Helper()
		assert.Equal(t, code, r.code, "%s: %s", what, r.stderr)
		assert.Contains(t, r.stderr, "exec "+argv0+": no such file or directory", what)
		assert.NotContains(t, r.stderr, "refusing", what)
		assert.Empty(t, r.stdout, what)
	}
	for _, rt := range runtimes {
		for i, a := range argv0s {
			id := "selfexe-" + rt.name + "-run" + string(rune('0'+i))
			b := bundle(t, id, []string{a}, selfExeFiles(t))
			check(rt.name+" run "+a, a, rt.run(id, b), 1)
			if rt.name == "vessel" {
				cli(t, root, "delete", "--force", id)
			} else {
				runcCmd("delete", "--force", id)
			}
		}
		id := "selfexe-" + rt.name
		b := bundle(t, id, []string{"sleep", "100"}, selfExeFiles(t))
		if rt.name == "vessel" {
			cli(t, root, "run", "--detach", "--bundle", b, id).ok(t, "run --detach")
			rec := record(t, root, id)
			defer func() {
				cli(t, root, "delete", "--force", id).ok(t, "delete")
				assertGone(t, root, rec)
			}()
		} else {
			r := runcCmd("run", "--detach", "--bundle", b, id)
			require.Equal(t, 0, r.code, "runc run --detach: %s", r.stderr)
			defer func() {
				r := runcCmd("delete", "--force", id)
				assert.Equal(t, 0, r.code, "runc delete: %s", r.stderr)
			}()
		}
		for _, a := range argv0s {
			check(rt.name+" exec "+a, a, rt.exec(id, a), rt.execCode)
		}
	}
}
