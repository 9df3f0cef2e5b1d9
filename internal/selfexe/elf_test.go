package selfexe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// debugELFInterp is what debug/elf says a file's interpreter is.
func debugELFInterp(t *testing.T, p string) (string, bool) {
	ef, err := elf.Open(p)
	if err != nil {
		return "", false
	}
	defer ef.Close()
	for _, ph := range ef.Progs {
		if ph.Type == elf.PT_INTERP {
			b := make([]byte, ph.Filesz)
			if _, err := ph.ReadAt(b, 0); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			return string(bytes.TrimRight(b, "\x00")), true
		}
	}
	return "", true
}

// synthELF writes a minimal executable with a PT_LOAD and, when interp is
// set, a PT_INTERP program header: 64-bit little-endian or 32-bit
// big-endian, so both of ELFInterpreter's layouts are read.
func synthELF(t *testing.T, dir string, is64 bool, interp string) string {
	var bo binary.ByteOrder = binary.LittleEndian
	ehsize, phsize := 64, 56
	if !is64 {
		bo, ehsize, phsize = binary.BigEndian, 52, 32
	}
	phnum := 1
	if interp != "" {
		phnum = 2
	}
	interpOff := ehsize + phnum*phsize
	f := make([]byte, interpOff+len(interp)+1)
	copy(f, "\x7fELF")
	f[4], f[5], f[6] = 2, 1, 1
	if !is64 {
		f[4], f[5] = 1, 2
	}
	bo.PutUint16(f[16:], 2) // ET_EXEC
	if is64 {
		bo.PutUint16(f[18:], uint16(elf.EM_X86_64))
		bo.PutUint32(f[20:], 1)
		bo.PutUint64(f[32:], uint64(ehsize))
		bo.PutUint16(f[52:], uint16(ehsize))
		bo.PutUint16(f[54:], uint16(phsize))
		bo.PutUint16(f[56:], uint16(phnum))
	} else {
		bo.PutUint16(f[18:], uint16(elf.EM_PPC))
		bo.PutUint32(f[20:], 1)
		bo.PutUint32(f[28:], uint32(ehsize))
		bo.PutUint16(f[40:], uint16(ehsize))
		bo.PutUint16(f[42:], uint16(phsize))
		bo.PutUint16(f[44:], uint16(phnum))
	}
	ph := func(i int, typ uint32, off, size uint64) {
		b := f[ehsize+i*phsize:]
		bo.PutUint32(b, typ)
		if is64 {
			bo.PutUint64(b[8:], off)
			bo.PutUint64(b[32:], size)
			bo.PutUint64(b[40:], size)
		} else {
			bo.PutUint32(b[4:], uint32(off))
			bo.PutUint32(b[16:], uint32(size))
			bo.PutUint32(b[20:], uint32(size))
		}
	}
	ph(0, uint32(elf.PT_LOAD), 0, uint64(len(f)))
	if interp != "" {
		ph(1, uint32(elf.PT_INTERP), uint64(interpOff), uint64(len(interp)+1))
		copy(f[interpOff:], interp)
	}
	p := filepath.Join(dir, "elf")
	if err := os.WriteFile(p, f, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// ELFInterpreter reads what debug/elf reads: for synthetic binaries of
// both layouts with and without an interpreter, for this machine's own
// binaries, and nothing from files that are not ELF.
func TestELFInterpreterMatchesDebugELF(t *testing.T) {
	check := func(p, want string) {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if got := ELFInterpreter(f); got != want {
			t.Errorf("%s: interpreter %q, want %q", p, got, want)
		}
	}
	for _, is64 := range []bool{true, false} {
		for _, interp := range []string{"", "/lib/ld-test.so.1"} {
			p := synthELF(t, t.TempDir(), is64, interp)
			want, ok := debugELFInterp(t, p)
			if !ok || want != interp {
				t.Fatalf("synthetic ELF (64-bit %v, interp %q): debug/elf reads %q (parsed %v)", is64, interp, want, ok)
			}
			check(p, interp)
		}
	}
	paths, _ := filepath.Glob("/usr/bin/*")
	paths = append(paths, "/proc/self/exe")
	checked := 0
	for _, p := range paths {
		want, ok := debugELFInterp(t, p)
		if !ok {
			continue
		}
		check(p, want)
		if checked++; checked >= 200 {
			break
		}
	}
	if checked == 0 {
		t.Fatal("no ELF binary of this machine checked")
	}
	text := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho not ELF, long enough to fill a header............\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{text, "/dev/null"} {
		check(p, "")
	}
}
