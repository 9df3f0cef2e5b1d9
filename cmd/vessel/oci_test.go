package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/oci"
)

// vesselBin is the command built once for the tests.
var vesselBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vessel-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	vesselBin = filepath.Join(dir, "vessel")
	build := exec.Command("go", "build", "-o", vesselBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building vessel: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if err := testutil.Cleanup(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: cleanup: %v\n", err)
	}
	testutil.RemoveCgroupGroup()
	os.Exit(code)
}

// result is one run of the command.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs vessel --root root ARGS with stdin /dev/null and stdout and
// stderr in files (a created container keeps them open, so pipes would
// never end).
func cli(t *testing.T, root string, args ...string) result {
	t.Helper()
	return cliWith(t, append([]string{"--root", root}, args...), nil)
}

func cliWith(t *testing.T, args []string, out *os.File) result {
	t.Helper()
	dir := t.TempDir()
	so, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	se, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer se.Close()
	cmd := exec.Command(vesselBin, args...)
	cmd.Stdout, cmd.Stderr = so, se
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vessel %v: %v", args, err)
	}
	a, _ := os.ReadFile(so.Name())
	b, _ := os.ReadFile(se.Name())
	return result{stdout: string(a), stderr: string(b), code: code}
}

func (r result) ok(t *testing.T, what string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d, stderr: %s", what, r.code, r.stderr)
	}
	return r
}

// testRoot is a --root for one test; the test fails if a container is
// left in it.
func testRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() {
		st, err := oci.NewStore(root)
		if err != nil {
			t.Error(err)
			return
		}
		ids, _ := st.List()
		for _, id := range ids {
			t.Errorf("container %s left in %s", id, root)
			cli(t, root, "delete", "--force", id)
		}
	})
	return root
}

// bundle writes a bundle running args in a private busybox rootfs, its
// cgroup at vessel-test/ID.
func bundle(t *testing.T, id string, args []string, edit func(*specs.Spec)) string {
	t.Helper()
	dir := t.TempDir()
	spec := oci.DefaultSpec()
	spec.Root = &specs.Root{Path: testutil.BusyboxRootfsCopy(t)}
	spec.Process.Terminal = false
	spec.Process.Args = args
	spec.Linux.CgroupsPath = "vessel-test/" + id
	if edit != nil {
		edit(spec)
	}
	if err := oci.WriteSpec(dir, spec); err != nil {
		t.Fatal(err)
	}
	return dir
}

// state runs "state" and decodes it.
func state(t *testing.T, root, id string) runtimeState {
	t.Helper()
	r := cli(t, root, "state", id).ok(t, "state "+id)
	var s runtimeState
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("state %s: %v: %s", id, err, r.stdout)
	}
	return s
}

func waitStatus(t *testing.T, root, id, want string) runtimeState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := state(t, root, id)
		if s.Status == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %s, want %s", id, s.Status, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCreated waits until a container started by another command exists.
func waitCreated(t *testing.T, root, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cli(t, root, "state", id).code == 0 {
			return
		}
	}
	t.Fatalf("%s was not created", id)
}

// record reads the stored record of a container.
func record(t *testing.T, root, id string) *oci.Record {
	t.Helper()
	st, err := oci.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Load(id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// assertGone checks that nothing of a deleted container is left: state,
// processes, cgroups.
func assertGone(t *testing.T, root string, rec *oci.Record) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, rec.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: state directory still there (%v)", rec.ID, err)
	}
	for _, p := range []oci.Process{rec.Init, rec.Main} {
		if p.Alive() {
			t.Errorf("%s: process %d still alive", rec.ID, p.Pid)
		}
	}
	if rec.CgroupState != nil {
		for h, dir := range rec.CgroupState.Dirs {
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: cgroup %s left in hierarchy %s", rec.ID, dir, h)
			}
		}
	}
	if r := cli(t, root, "state", rec.ID); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("state of a deleted container: exit %d, stderr %q", r.code, r.stderr)
	}
}

// cgroupFile reads a file of the container's cgroup, in whichever
// hierarchy has it.
func cgroupFile(t *testing.T, rec *oci.Record, name string) string {
	t.Helper()
	for _, dir := range rec.CgroupState.Dirs {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no %s in the cgroups of %s", name, rec.ID)
	return ""
}

func TestOCILifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "life"
	b := bundle(t, id, []string{"sh", "-c", "echo main-started; exec sleep 100"}, nil)
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := cliWith(t, []string{"--root", root, "create", "--bundle", b, "--pid-file", pidFile, id}, out)
	if r.code != 0 {
		data, _ := os.ReadFile(out.Name())
		t.Fatalf("create: exit %d: %s", r.code, data)
	}
	s := state(t, root, id)
	if s.Status != "created" || s.Pid <= 0 || s.ID != id || s.Bundle != b || s.OCIVersion == "" {
		t.Fatalf("state after create: %+v", s)
	}
	if data, _ := os.ReadFile(pidFile); strings.TrimSpace(string(data)) != strconv.Itoa(s.Pid) {
		t.Errorf("--pid-file holds %q, state says pid %d", data, s.Pid)
	}
	if data, _ := os.ReadFile(out.Name()); strings.Contains(string(data), "main-started") {
		t.Fatal("the process ran before start")
	}
	if r := cli(t, root, "create", "--bundle", b, id); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second create of %s: exit %d, %q", id, r.code, r.stderr)
	}

	cli(t, root, "start", id).ok(t, "start")
	s = state(t, root, id)
	if s.Status != "running" {
		t.Fatalf("state after start: %+v", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(out.Name())
		if strings.Contains(string(data), "main-started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the main process wrote nothing after start: %q", data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := cli(t, root, "start", id); r.code != 1 {
		t.Errorf("start of a running container: exit %d", r.code)
	}

	r = cli(t, root, "exec", "--env", "GREETING=hi", id, "sh", "-c", "echo $GREETING from $(hostname); exit 3")
	if r.code != 3 || strings.TrimSpace(r.stdout) != "hi from vessel" {
		t.Errorf("exec: exit %d (want 3), stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	execPid := filepath.Join(t.TempDir(), "exec.pid")
	cli(t, root, "exec", "--detach", "--pid-file", execPid, id, "sleep", "100").ok(t, "exec --detach")
	data, _ := os.ReadFile(execPid)
	detached, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("exec --pid-file: %q", data)
	}

	r = cli(t, root, "ps", "--format", "json", id).ok(t, "ps")
	var pids []int
	if err := json.Unmarshal([]byte(r.stdout), &pids); err != nil {
		t.Fatalf("ps --format json: %v: %q", err, r.stdout)
	}
	// The pid file of a detached exec names its stand-in (outside the
	// container, relaying the exec'd process's status): ps lists the
	// main process and the exec'd one.
	if !slices.Contains(pids, s.Pid) || len(pids) < 2 || slices.Contains(pids, detached) {
		t.Errorf("ps: %v: want the main process %d, the exec'd one, not the stand-in %d", pids, s.Pid, detached)
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", detached)); !strings.HasPrefix(string(cmdline), "vessel-exec-relay\x00") {
		t.Errorf("exec --pid-file %d: %q is not the exec stand-in", detached, cmdline)
	}
	r = cli(t, root, "ps", id).ok(t, "ps table")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) < 3 || !strings.Contains(lines[0], "PID") {
		t.Errorf("ps table: %q", r.stdout)
	}

	cli(t, root, "pause", id).ok(t, "pause")
	if s := state(t, root, id); s.Status != "paused" {
		t.Errorf("after pause: %s", s.Status)
	}
	if r := cli(t, root, "exec", id, "true"); r.code != 1 {
		t.Errorf("exec in a paused container: exit %d", r.code)
	}
	cli(t, root, "resume", id).ok(t, "resume")
	if s := state(t, root, id); s.Status != "running" {
		t.Errorf("after resume: %s", s.Status)
	}
	if r := cli(t, root, "resume", id); r.code != 1 {
		t.Errorf("resume of a running container: exit %d", r.code)
	}

	cli(t, root, "update", "--pids-limit", "42", "--memory", "64m", id).ok(t, "update")
	rec := record(t, root, id)
	if got := cgroupFile(t, rec, "pids.max"); got != "42" {
		t.Errorf("pids.max after update: %s", got)
	}
	if rec.Config.Resources == nil || rec.Config.Resources.Pids == nil || *rec.Config.Resources.Pids.Max != 42 {
		t.Errorf("the stored config does not record the update: %+v", rec.Config.Resources)
	}
	res := filepath.Join(t.TempDir(), "res.json")
	os.WriteFile(res, []byte(`{"pids":{"limit":43}}`), 0o644)
	cli(t, root, "update", "-r", res, id).ok(t, "update -r")
	if got := cgroupFile(t, rec, "pids.max"); got != "43" {
		t.Errorf("pids.max after update -r: %s", got)
	}

	r = cli(t, root, "events", "--stats", id).ok(t, "events --stats")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var ev struct {
		Type string
		ID   string
		Data struct {
			Pids struct{ Current, Limit uint64 }
			CPU  struct{ Usage struct{ Total uint64 } }
		}
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil {
		t.Fatalf("events --stats: %q", r.stdout)
	}
	if ev.Type != "stats" || ev.ID != id || ev.Data.Pids.Current < 2 || ev.Data.Pids.Limit != 43 || ev.Data.CPU.Usage.Total == 0 {
		t.Errorf("events --stats: %+v", ev)
	}

	if r := cli(t, root, "kill", id, "NOSUCHSIGNAL"); r.code != exitVessel {
		t.Errorf("kill with a bad signal: exit %d", r.code)
	}
	cli(t, root, "kill", id, "9").ok(t, "kill")
	waitStatus(t, root, id, "stopped")
	if r := cli(t, root, "kill", id); r.code != 1 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("kill of a stopped container: exit %d, %q", r.code, r.stderr)
	}
	cli(t, root, "delete", id).ok(t, "delete")
	assertGone(t, root, rec)
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", detached)); err == nil && strings.HasPrefix(string(cmdline), "sleep") {
		t.Errorf("the exec'd process %d outlived its container", detached)
	}
}

func TestOCIRunExitCodes(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	b := bundle(t, "fg", []string{"sh", "-c", "echo out; exit 7"}, nil)
	r := cli(t, root, "run", "--bundle", b, "fg")
	if r.code != 7 || strings.TrimSpace(r.stdout) != "out" {
		t.Errorf("run: exit %d (want 7), stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "fg")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("foreground run left its state: %v", err)
	}
	// The main process is PID 1 of its pid namespace: it ignores the
	// signals it has no handler for, except SIGKILL from outside (as
	// under runc). A trapped signal ends it by the trap's exit code.
	b = bundle(t, "sig", []string{"sh", "-c", "trap 'exit 5' USR1; echo ready; while :; do sleep 0.05; done"}, nil)
	done := make(chan result, 1)
	go func() { done <- cli(t, root, "run", "-b", b, "sig") }()
	waitCreated(t, root, "sig")
	waitStatus(t, root, "sig", "running")
	time.Sleep(200 * time.Millisecond) // the trap is set
	cli(t, root, "kill", "sig", "USR1").ok(t, "kill USR1")
	if r := <-done; r.code != 5 {
		t.Errorf("run of a process ended by its USR1 trap: exit %d, stderr %q", r.code, r.stderr)
	}
	b = bundle(t, "sigkill", []string{"sleep", "100"}, nil)
	go func() { done <- cli(t, root, "run", "-b", b, "sigkill") }()
	waitCreated(t, root, "sigkill")
	waitStatus(t, root, "sigkill", "running")
	cli(t, root, "kill", "sigkill", "KILL").ok(t, "kill KILL")
	if r := <-done; r.code != 128+int(syscall.SIGKILL) {
		t.Errorf("run of a process killed by SIGKILL: exit %d", r.code)
	}

	b = bundle(t, "bg", []string{"sleep", "100"}, nil)
	cli(t, root, "run", "--detach", "--bundle", b, "bg").ok(t, "run --detach")
	s := state(t, root, "bg")
	if s.Status != "running" {
		t.Fatalf("run --detach: %+v", s)
	}
	rec := record(t, root, "bg")
	cli(t, root, "kill", "bg", "KILL").ok(t, "kill")
	waitStatus(t, root, "bg", "stopped")
	cli(t, root, "delete", "bg").ok(t, "delete")
	assertGone(t, root, rec)

	if r := cli(t, root, "run", "--bundle", t.TempDir(), "nobundle"); r.code != 1 || !strings.Contains(r.stderr, "config.json") {
		t.Errorf("run without config.json: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "nobundle")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a failed run left state behind")
	}
}

func TestOCIKillAll(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "killall"
	b := bundle(t, id, []string{"sh", "-c", "sleep 100 & sleep 100 & wait"}, nil)
	cli(t, root, "run", "-d", "-b", b, id).ok(t, "run -d")
	rec := record(t, root, id)
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) < 3 && time.Now().Before(deadline) { // sh, 2 sleeps (the init is outside)
		r := cli(t, root, "ps", "-f", "json", id).ok(t, "ps")
		json.Unmarshal([]byte(r.stdout), &pids)
	}
	if len(pids) < 3 {
		t.Fatalf("ps: %v", pids)
	}
	cli(t, root, "kill", "--all", id, "SIGTERM").ok(t, "kill --all")
	waitStatus(t, root, id, "stopped")
	for _, pid := range pids {
		if pid == rec.Init.Pid {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.HasPrefix(string(st), "sleep") {
			t.Errorf("process %d survived kill --all", pid)
		}
	}
	cli(t, root, "delete", id).ok(t, "delete")
	assertGone(t, root, rec)
}

func TestOCIDeleteForce(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	b := bundle(t, "running", []string{"sleep", "100"}, nil)
	cli(t, root, "run", "-d", "-b", b, "running").ok(t, "run -d")
	rec := record(t, root, "running")
	if r := cli(t, root, "delete", "running"); r.code != 1 || !strings.Contains(r.stderr, "not stopped") {
		t.Errorf("delete of a running container: exit %d, %q", r.code, r.stderr)
	}
	if s := state(t, root, "running"); s.Status != "running" {
		t.Errorf("a refused delete changed the container: %s", s.Status)
	}
	cli(t, root, "delete", "--force", "running").ok(t, "delete --force")
	assertGone(t, root, rec)

	// A crash between create and start: the init dies, the record stays.
	b = bundle(t, "crashed", []string{"sleep", "100"}, nil)
	cli(t, root, "create", "-b", b, "crashed").ok(t, "create")
	rec = record(t, root, "crashed")
	if err := syscall.Kill(rec.Init.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, root, "crashed", "stopped")
	cli(t, root, "delete", "--force", "crashed").ok(t, "delete --force of a crashed container")
	assertGone(t, root, rec)

	// A crash inside create, before the init started: only the record
	// written ahead (with the cgroup placement) is there.
	st, err := oci.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := st.Create("halfway")
	if err != nil {
		t.Fatal(err)
	}
	half := &oci.Record{ID: "halfway", Created: time.Now()}
	if err := st.Save(half); err != nil {
		t.Fatal(err)
	}
	lock.Unlock()
	if s := state(t, root, "halfway"); s.Status != "stopped" || s.Pid != 0 {
		t.Errorf("state of a half-created container: %+v", s)
	}
	cli(t, root, "delete", "--force", "halfway").ok(t, "delete --force of a half-created container")
	assertGone(t, root, half)
	if r := cli(t, root, "delete", "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("delete of a missing container: exit %d, %q", r.code, r.stderr)
	}
	if r := cli(t, root, "delete", "--force", "nosuch"); r.code != 0 {
		t.Errorf("delete --force of a missing container: exit %d, %q (runc succeeds)", r.code, r.stderr)
	}
}

func TestOCIHooks(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "hooks"
	tools := t.TempDir()
	os.Chmod(tools, 0o755)
	// Each hook appends its name and the status it read on stdin.
	script := "#!/bin/sh\nst=$(cat | sed -n 's/.*\"status\":\"\\([a-z]*\\)\".*/\\1/p')\necho \"$1 $st\" >> \"$2\"\n"
	hostHook := filepath.Join(tools, "hook.sh")
	if err := os.WriteFile(hostHook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var logFile string
	b := bundle(t, id, []string{"sh", "-c", "echo process >> /hooks.log; exec sleep 100"}, func(s *specs.Spec) {
		rootfs := s.Root.Path
		logFile = filepath.Join(rootfs, "hooks.log")
		// startContainer runs inside the container: its path and the
		// log are the container's.
		if err := os.WriteFile(filepath.Join(rootfs, "hook.sh"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		host := func(name string) specs.Hook {
			return specs.Hook{Path: hostHook, Args: []string{"hook.sh", name, logFile}, Env: env}
		}
		s.Hooks = &specs.Hooks{
			Prestart:        []specs.Hook{host("prestart")},
			CreateRuntime:   []specs.Hook{host("createRuntime")},
			CreateContainer: []specs.Hook{host("createContainer")},
			StartContainer:  []specs.Hook{{Path: "/hook.sh", Args: []string{"hook.sh", "startContainer", "/hooks.log"}, Env: env}},
			Poststart:       []specs.Hook{host("poststart")},
			Poststop:        []specs.Hook{host("poststop")},
		}
	})
	read := func() []string {
		data, _ := os.ReadFile(logFile)
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	names := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			out = append(out, strings.Fields(l + " ")[0])
		}
		return out
	}
	cli(t, root, "create", "-b", b, id).ok(t, "create")
	if got := names(read()); !slices.Equal(got, []string{"prestart", "createRuntime", "createContainer"}) {
		t.Fatalf("hooks after create: %q", read())
	}
	cli(t, root, "start", id).ok(t, "start")
	deadline := time.Now().Add(5 * time.Second)
	for len(read()) < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := read()
	got := names(lines)
	if len(got) != 6 || !slices.Equal(got[:4], []string{"prestart", "createRuntime", "createContainer", "startContainer"}) ||
		!slices.Contains(got[4:], "process") || !slices.Contains(got[4:], "poststart") {
		t.Fatalf("hooks after start: %q", lines)
	}
	if !slices.Contains(lines, "poststart running") {
		t.Errorf("poststart did not read status running: %q", lines)
	}
	rec := record(t, root, id)
	cli(t, root, "delete", "--force", id).ok(t, "delete --force")
	lines = read()
	if len(lines) != 7 || lines[6] != "poststop stopped" {
		t.Errorf("hooks after delete: %q", lines)
	}
	assertGone(t, root, rec)
}

func TestOCIConcurrent(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const n = 20
	rootfs := testutil.BusyboxRootfsCopy(t)
	bundles := make([]string, n)
	for i := range bundles {
		id := fmt.Sprintf("conc-%d", i)
		bundles[i] = bundle(t, id, []string{"sleep", "100"}, func(s *specs.Spec) {
			s.Root = &specs.Root{Path: rootfs, Readonly: true}
		})
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4*n)
	recs := make(chan *oci.Record, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("conc-%d", i)
			if r := cli(t, root, "create", "-b", bundles[i], id); r.code != 0 {
				errs <- fmt.Sprintf("create %s: %s", id, r.stderr)
				return
			}
			// Others meanwhile create the same id: all must fail.
			if r := cli(t, root, "create", "-b", bundles[i], id); r.code != 1 {
				errs <- fmt.Sprintf("second create of %s: exit %d", id, r.code)
			}
			if r := cli(t, root, "start", id); r.code != 0 {
				errs <- fmt.Sprintf("start %s: %s", id, r.stderr)
			}
			if r := cli(t, root, "list", "-q"); r.code != 0 {
				errs <- "list: " + r.stderr
			}
			st, _ := oci.NewStore(root)
			if rec, err := st.Load(id); err == nil {
				recs <- rec
			} else {
				errs <- err.Error()
			}
			if r := cli(t, root, "delete", "-f", id); r.code != 0 {
				errs <- fmt.Sprintf("delete %s: %s", id, r.stderr)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	close(recs)
	for e := range errs {
		t.Error(e)
	}
	for rec := range recs {
		if rec.Init.Pid == 0 || !rec.Started {
			t.Errorf("%s: record incomplete: %+v", rec.ID, rec)
		}
		assertGone(t, root, rec)
	}
	if r := cli(t, root, "list", "--format", "json").ok(t, "list"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("list after deleting all: %s", r.stdout)
	}
}

func TestOCIErrorsAndLog(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	logFile := filepath.Join(t.TempDir(), "log.json")
	r := cliWith(t, []string{"--root", root, "--log", logFile, "--log-format", "json", "state", "nosuch"}, nil)
	if r.code != 1 || !strings.Contains(r.stderr, "nosuch does not exist") {
		t.Errorf("state of a missing container: exit %d, %q", r.code, r.stderr)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var entry struct{ Level, Msg, Time string }
	if err := json.Unmarshal(bytes.TrimSpace(data), &entry); err != nil || entry.Level != "error" || !strings.Contains(entry.Msg, "does not exist") || entry.Time == "" {
		t.Errorf("--log-format json: %q (%v)", data, err)
	}
	b := bundle(t, "bad", []string{"true"}, func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{} })
	if r := cli(t, root, "create", "-b", b, "bad"); r.code != 1 || !strings.Contains(r.stderr, "linux.intelRdt") {
		t.Errorf("create with an unsupported field: exit %d, %q", r.code, r.stderr)
	}
	if r := cli(t, root, "create", "-b", b, "../x"); r.code != 1 || !strings.Contains(r.stderr, "id") {
		t.Errorf("create with a bad id: exit %d, %q", r.code, r.stderr)
	}
	b = bundle(t, "tty", []string{"true"}, func(s *specs.Spec) { s.Process.Terminal = true })
	if r := cli(t, root, "create", "-b", b, "tty"); r.code != 1 || !strings.Contains(r.stderr, "console-socket") {
		t.Errorf("create of a terminal container without --console-socket: exit %d, %q", r.code, r.stderr)
	}
	if r := cliWith(t, []string{"--log-format", "xml", "list"}, nil); r.code != exitVessel {
		t.Errorf("--log-format xml: exit %d", r.code)
	}
}

func TestOCISpecAndFeatures(t *testing.T) {
	dir := t.TempDir()
	cliWith(t, []string{"spec", "--bundle", dir}, nil).ok(t, "spec")
	spec, err := oci.LoadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Root.Path != "rootfs" || !spec.Process.Terminal {
		t.Errorf("spec: %+v", spec)
	}
	if r := cliWith(t, []string{"spec", "--bundle", dir}, nil); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("spec over an existing config.json: exit %d, %q", r.code, r.stderr)
	}
	dir = t.TempDir()
	cliWith(t, []string{"spec", "--rootless", "-b", dir}, nil).ok(t, "spec --rootless")
	spec, _ = oci.LoadSpec(dir)
	if len(spec.Linux.UIDMappings) != 1 || spec.Linux.Resources != nil {
		t.Errorf("spec --rootless: %+v", spec.Linux)
	}
	r := cliWith(t, []string{"features"}, nil).ok(t, "features")
	var f struct {
		OCIVersionMax string
		Hooks         []string
		Linux         struct{ Namespaces []string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil || f.OCIVersionMax != specs.Version || len(f.Hooks) != 6 || !slices.Contains(f.Linux.Namespaces, "pid") {
		t.Errorf("features: %v %q", err, r.stdout)
	}
}

func TestSystemdCgroupPath(t *testing.T) {
	for in, want := range map[string]string{
		"system.slice:docker:abc": "/system.slice/docker-abc.scope",
		":runc:abc":               "/system.slice/runc-abc.scope",
		"a-b.slice::abc":          "/a.slice/a-b.slice/abc.scope",
		"user.slice:p:x.slice":    "/user.slice/x.slice",
	} {
		if got, err := systemdCgroupPath(in); err != nil || got != want {
			t.Errorf("systemdCgroupPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a:b", "a/b.slice:p:n", "system.slice:p:", "a--b.slice:p:n", "notaslice:p:n"} {
		if _, err := systemdCgroupPath(bad); err == nil {
			t.Errorf("systemdCgroupPath(%q) accepted", bad)
		}
	}
}

func TestCgroupPlacementAndRunDetection(t *testing.T) {
	if got := cgroupPlacement("vessel-test/x", vesselCgroupDefault()); got.Group != "vessel-test" || got.Name != "x" || got.Parent != "" {
		t.Errorf("relative: %+v", got)
	}
	if got := cgroupPlacement("/a/b/c", vesselCgroupDefault()); got.Parent != "/" || got.Group != "a" || got.Name != "b/c" {
		t.Errorf("absolute: %+v", got)
	}
	if got := cgroupPlacement("single", vesselCgroupDefault()); got != vesselCgroupDefault() {
		t.Errorf("single component: %+v", got)
	}
	for _, c := range []struct {
		args []string
		oci  bool
	}{
		{[]string{"--bundle", "x", "id"}, true},
		{[]string{"-b", "x", "-d", "id"}, true},
		{[]string{"--pid-file", "p", "id"}, true},
		{[]string{"-d", "id"}, false}, // docker's run -d of the program id (no config.json here)
		{[]string{"--rootfs", "/x", "--", "ls", "-d"}, false},
		{[]string{"--", "sh", "--bundle"}, false},
		{[]string{"sh", "--bundle"}, false},
	} {
		cmd := runCommand()
		if err := cmd.Flags().Parse(c.args); err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if got := isOCIRun(cmd.Flags(), cmd.Flags().Args()); got != c.oci {
			t.Errorf("isOCIRun(%q) = %v", c.args, got)
		}
	}
}

func vesselCgroupDefault() vessel.CgroupConfig { return vessel.CgroupConfig{Name: "single"} }
