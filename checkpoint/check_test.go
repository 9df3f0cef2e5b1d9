package checkpoint

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Check finds an MPTCP socket by its protocol (without stopping the
// process) and names the fix; a plain TCP socket is no problem.
func TestCheckFindsMPTCP(t *testing.T) {
	tcp, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tcp)
	if err := Check(os.Getpid()); err != nil {
		t.Fatalf("Check with a TCP socket: %v", err)
	}
	mp, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP)
	if err != nil {
		t.Fatalf("MPTCP socket (net.mptcp.enabled=1 on this machine): %v", err)
	}
	defer unix.Close(mp)
	err = Check(os.Getpid())
	var ue *UnsupportedError
	if !errors.As(err, &ue) || len(ue.Problems) != 1 || ue.Problems[0].FD != mp || ue.Problems[0].Pid != os.Getpid() {
		t.Fatalf("Check with an MPTCP socket at fd %d: %v", mp, err)
	}
	if !strings.Contains(err.Error(), "GODEBUG=multipathtcp=0") {
		t.Fatalf("error without the fix: %v", err)
	}
}
