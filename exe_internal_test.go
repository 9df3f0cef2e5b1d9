package vessel

import (
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
)

// elfInterpreter reads what debug/elf reads, for dynamic and static
// binaries of this machine, and nothing from files that are not ELF.
func TestELFInterpreterMatchesDebugELF(t *testing.T) {
	paths, _ := filepath.Glob("/usr/bin/*")
	paths = append(paths, "/proc/self/exe")
	checked, dynamic, static := 0, 0, 0
	for _, p := range paths {
		ef, err := elf.Open(p)
		if err != nil {
			continue
		}
		want := ""
		for _, ph := range ef.Progs {
			if ph.Type == elf.PT_INTERP {
				b := make([]byte, ph.Filesz)
				if _, err := ph.ReadAt(b, 0); err == nil {
					want = string(b[:len(b)-1])
				}
			}
		}
		ef.Close()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got := elfInterpreter(f)
		f.Close()
		if got != want {
			t.Errorf("%s: interpreter %q, debug/elf says %q", p, got, want)
		}
		checked++
		if want == "" {
			static++
		} else {
			dynamic++
		}
		if checked >= 200 {
			break
		}
	}
	if dynamic == 0 || static == 0 {
		t.Fatalf("checked %d binaries, %d dynamic and %d static: want both kinds", checked, dynamic, static)
	}
	for _, p := range []string{"/etc/hostname", "/dev/null"} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := elfInterpreter(f); got != "" {
			t.Errorf("%s: interpreter %q from a file that is not ELF", p, got)
		}
		f.Close()
	}
}
