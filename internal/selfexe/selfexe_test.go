package selfexe

import (
	"bytes"
	"os"
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
