package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openvessel/vessel/examples/internal/exampletest"
)

var migrateBin string // the built example

func TestMain(m *testing.M) { exampletest.Main(m, "migrate", &migrateBin) }

var (
	beforeLine   = regexp.MustCompile(`(?m)^source: counter at (\d+), migrating to `)
	afterLine    = regexp.MustCompile(`(?m)^target: counter went on from (\d+) to (\d+)$`)
	movedLine    = regexp.MustCompile(`(?m)^moved: (\d+) bytes \((\d+) while the container was down\)$`)
	receivedLine = regexp.MustCompile(`(?m)^target: received (\d+) rounds, (\d+) bytes; restored container "([^"]+)"`)
	statsLine    = regexp.MustCompile(`(?m)^migrated: pre-dumps \d+, freeze time (\S+), downtime (\S+), restore \S+, total \S+$`)
)

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// checkContinued checks that the counter went on after the migration
// from at least where it was before it, not again from 1.
func checkContinued(t *testing.T, out string) {
	t.Helper()
	b := beforeLine.FindStringSubmatch(out)
	a := afterLine.FindStringSubmatch(out)
	if b == nil || a == nil {
		t.Fatalf("no counter report before and after the migration:\n%s", out)
	}
	before, from, to := atoi(t, b[1]), atoi(t, a[1]), atoi(t, a[2])
	if before < 10 || from < before || to <= from {
		t.Errorf("counter %d before the migration, then %d -> %d: want it to go on, not restart", before, from, to)
	}
}

// checkNothingLeft checks that containers whose ids start with prefix
// left no cgroup, mount or process.
func checkNothingLeft(t *testing.T, prefix string) {
	t.Helper()
	exampletest.AssertNoLeftovers(t, prefix)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "name="+prefix) {
			t.Errorf("process %s still runs: %q", filepath.Base(filepath.Dir(p)), b)
		}
	}
}

// TestDemo migrates the counter over 127.0.0.1 within one program.
func TestDemo(t *testing.T) {
	stdout, stderr, code, pid := exampletest.RunPid(t, migrateBin, "-cgroup", exampletest.CgroupGroup, "demo")
	t.Logf("output:\n%s", stdout)
	if code != 0 {
		t.Fatalf("migrate demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	checkContinued(t, stdout)
	m := movedLine.FindStringSubmatch(stdout)
	r := receivedLine.FindStringSubmatch(stdout)
	if m == nil || r == nil {
		t.Fatalf("no byte counts reported:\n%s", stdout)
	}
	if sent, got := atoi(t, m[1]), atoi(t, r[2]); sent <= 0 || sent != got {
		t.Errorf("sent %d bytes, received %d", sent, got)
	}
	if s := statsLine.FindStringSubmatch(stdout); s == nil {
		t.Errorf("no freeze time and downtime reported:\n%s", stdout)
	} else {
		for _, d := range s[1:] {
			if v, err := time.ParseDuration(d); err != nil || v <= 0 {
				t.Errorf("duration %q: %v", d, err)
			}
		}
	}
	for _, want := range []string{"source: container stopped", fmt.Sprintf(`target: container "migrate-%d-b" is running`, pid)} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	checkNothingLeft(t, fmt.Sprintf("migrate-%d-", pid))
}

// TestSendReceive runs the two ends as two programs: the counter leaves
// the sender's process tree and lives on in the receiver's.
func TestSendReceive(t *testing.T) {
	data := t.TempDir()
	recv := exec.Command(migrateBin, "-cgroup", exampletest.CgroupGroup, "receive", "-listen", "127.0.0.1:0", "-data", data)
	pr, pw := io.Pipe()
	recv.Stdout = pw
	var recvErr strings.Builder
	recv.Stderr = &recvErr
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { err := recv.Wait(); pw.Close(); exited <- err }()
	stopped := false
	defer func() {
		if !stopped {
			recv.Process.Signal(syscall.SIGTERM) // it destroys its container
			<-exited
		}
	}()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var recvOut strings.Builder
	waitLine := func(prefix string) string {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("receiver ended before printing %q:\n%s\nstderr:\n%s", prefix, recvOut.String(), recvErr.String())
				}
				recvOut.WriteString(l + "\n")
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("receiver did not print %q:\n%s", prefix, recvOut.String())
			}
		}
	}
	addr := strings.TrimPrefix(waitLine("target: waiting for a migration on "), "target: waiting for a migration on ")

	stdout, stderr, code, sendPid := exampletest.RunPid(t, migrateBin, "-cgroup", exampletest.CgroupGroup, "send", "-to", addr, "-data", data)
	if code != 0 {
		t.Fatalf("send: exit %d\nstdout:\n%s\nstderr:\n%s\nreceiver:\n%s", code, stdout, stderr, recvOut.String())
	}
	waitLine("target: the counter runs here now")
	// The sender is gone, yet the counter still counts, in the receiver.
	before := readCount(data)
	if n, err := waitCount(data, before+3, 10*time.Second); err != nil {
		t.Errorf("counter stopped at %d after the sender exited: %v", n, err)
	}
	checkContinued(t, stdout+recvOut.String())
	if err := recv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := <-exited; err != nil {
		t.Errorf("receiver: %v\n%s", err, recvErr.String())
	}
	checkNothingLeft(t, fmt.Sprintf("migrate-%d-", sendPid))
	checkNothingLeft(t, fmt.Sprintf("migrate-%d-", recv.Process.Pid))
}

// TestBadInput checks that a missing flag is named and nothing starts.
func TestBadInput(t *testing.T) {
	_, stderr, code, pid := exampletest.RunPid(t, migrateBin, "send", "-to", "127.0.0.1:1")
	if code == 0 || !strings.Contains(stderr, "-data") {
		t.Errorf("send without -data: exit %d, stderr %q", code, stderr)
	}
	checkNothingLeft(t, fmt.Sprintf("migrate-%d-", pid))
}
