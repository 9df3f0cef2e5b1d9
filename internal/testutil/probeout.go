package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/openvessel/vessel/internal/probe"
	"golang.org/x/sys/unix"
)

// lastJSONLine returns the last line of out that looks like a JSON value, so
// that output with a shell banner or log lines before the JSON still parses.
func lastJSONLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		l := bytes.TrimSpace(lines[i])
		if len(l) > 0 && (l[0] == '{' || l[0] == '[') {
			return l
		}
	}
	return bytes.TrimSpace(out)
}

func decode(what string, out []byte, v any) error {
	line := lastJSONLine(out)
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("parse probe %s output: %w; output was:\n%s", what, err, clip(out))
	}
	return nil
}

func clip(b []byte) string {
	const max = 4000
	if len(b) > max {
		return string(b[:max]) + "\n...(clipped)"
	}
	return string(b)
}

// ParseReport decodes the output of "probe report". Lines before the JSON
// line are ignored.
func ParseReport(out []byte) (*probe.Report, error) {
	var r probe.Report
	if err := decode("report", out, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ParseTry decodes the output of "probe try ...". Lines before the JSON
// line are ignored.
func ParseTry(out []byte) (*probe.TryResult, error) {
	var r probe.TryResult
	if err := decode("try", out, &r); err != nil {
		return nil, err
	}
	if r.Action == "" {
		return nil, fmt.Errorf("parse probe try output: no action; output was:\n%s", clip(out))
	}
	return &r, nil
}

// ParseLs decodes the output of "probe ls DIR".
func ParseLs(out []byte) ([]probe.DirEntry, error) {
	var entries []probe.DirEntry
	if err := decode("ls", out, &entries); err != nil {
		return nil, err
	}
	return entries, nil
}

// MustParseReport is ParseReport that fails the test on error.
func MustParseReport(t testing.TB, out []byte) *probe.Report {
	t.Helper()
	r, err := ParseReport(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// MustParseTry is ParseTry that fails the test on error.
func MustParseTry(t testing.TB, out []byte) *probe.TryResult {
	t.Helper()
	r, err := ParseTry(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// RunProbe runs the probe (BuildProbe) directly on the host, outside any
// container, with the given arguments and returns its standard output. A
// non-zero exit fails the test and shows its standard error.
func RunProbe(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(BuildProbe(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("probe %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, clip(stdout.Bytes()), clip(stderr.Bytes()))
	}
	return stdout.Bytes()
}

// AssertDenied fails the test unless the action was attempted and the kernel
// refused it; with errnos given, the error must also be one of them. A
// result the probe itself refused (TryResult.Refused) fails the test too: it
// proves nothing.
func AssertDenied(t testing.TB, r *probe.TryResult, errnos ...syscall.Errno) {
	t.Helper()
	switch {
	case r == nil:
		t.Fatalf("AssertDenied: nil TryResult")
	case r.Refused:
		t.Errorf("probe try %s %v was not attempted: %s", r.Action, r.Args, r.Detail)
	case r.OK:
		t.Errorf("probe try %s %v succeeded, want it denied: %s", r.Action, r.Args, r.Detail)
	case len(errnos) > 0 && !errnoIn(syscall.Errno(r.Errno), errnos):
		t.Errorf("probe try %s %v failed with %s (step %q), want one of %s: %s",
			r.Action, r.Args, errnoLabel(syscall.Errno(r.Errno)), r.Step, errnoList(errnos), r.Detail)
	}
}

// AssertAllowed fails the test unless the action was attempted and
// succeeded.
func AssertAllowed(t testing.TB, r *probe.TryResult) {
	t.Helper()
	switch {
	case r == nil:
		t.Fatalf("AssertAllowed: nil TryResult")
	case r.Refused:
		t.Errorf("probe try %s %v was not attempted: %s", r.Action, r.Args, r.Detail)
	case !r.OK:
		t.Errorf("probe try %s %v failed with %s at step %q, want success: %s",
			r.Action, r.Args, errnoLabel(syscall.Errno(r.Errno)), r.Step, r.Detail)
	}
}

func errnoIn(e syscall.Errno, list []syscall.Errno) bool {
	for _, w := range list {
		if e == w {
			return true
		}
	}
	return false
}

func errnoLabel(e syscall.Errno) string {
	if e == 0 {
		return "no errno"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return "errno " + strconv.Itoa(int(e))
}

func errnoList(list []syscall.Errno) string {
	names := make([]string, len(list))
	for i, e := range list {
		names[i] = errnoLabel(e)
	}
	return strings.Join(names, ", ")
}

// ReadCounter reads the value "probe count FILE" keeps in path. It retries a
// few times when it catches the file mid-write.
func ReadCounter(path string) (int64, error) {
	var lastErr error
	for i := 0; i < 5; i++ {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil {
			return n, nil
		}
		lastErr = fmt.Errorf("counter file %s holds %q: %w", path, b, err)
	}
	return 0, lastErr
}

func owner(info os.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
