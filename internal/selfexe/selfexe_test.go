package selfexe

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestPathIsTheProgramAndReadOnly: the handle holds this program's bytes,
// cannot be opened for writing, and is the same on every call.
func TestPathIsTheProgramAndReadOnly(t *testing.T) {
	p, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && !strings.HasPrefix(p, "/proc/self/fd/") {
		t.Errorf("as root, Path = %s; want a bind or memfd handle", p)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %d bytes that differ from the program's %d", p, len(got), len(want))
	}
	if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Errorf("%s opened for writing", p)
	}
	if p2, _ := Path(); p2 != p {
		t.Errorf("second call gave %s, first %s", p2, p)
	}
}

// TestShimRunsTheProgramOnlyWhereItIsHeld: a static program gets a shim
// whose interpreter is Path's descriptor; executed by this process (which
// holds that descriptor) it is this program with the shim as its
// /proc/self/exe; executed by a process that does not hold it, execve
// fails with ENOENT (a POSIX shell's 127).
func TestShimRunsTheProgramOnlyWhereItIsHeld(t *testing.T) {
	p, bin, at, err := Shim()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := Path()
	if Interpreter() != "" || !strings.HasPrefix(exe, "/proc/self/fd/") {
		t.Fatalf("this test binary (TestMain: static) has interpreter %q and handle %s: no shim possible", Interpreter(), exe)
	}
	if bin == nil || p == exe || "/proc/self/fd/"+strconv.Itoa(at) != exe {
		t.Fatalf("Shim = %s, %v, %d for the program at %s", p, bin, at, exe)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := ELFInterpreter(f); got != exe {
		t.Errorf("the shim's interpreter is %q, want %q", got, exe)
	}
	cmd := exec.Command(p)
	cmd.Env = append(os.Environ(), "SELFEXE_SHIM_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "shim child /memfd:vessel-shim") {
		t.Errorf("the shim run here: %v: %q", err, out)
	}
	sh := exec.Command("/bin/sh", "-c", "exec /proc/self/fd/3")
	sh.Env = append(os.Environ(), "SELFEXE_SHIM_CHILD=1")
	sh.ExtraFiles = []*os.File{f}
	out, err = sh.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 127 || strings.Contains(string(out), "shim child") {
		t.Errorf("the shim run by a process without descriptor %d: %v: %q; want exit 127 (ENOENT)", at, err, out)
	}
}
