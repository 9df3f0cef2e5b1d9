package testutil

import (
	"encoding/binary"
	"fmt"
	"runtime"
)

// RootfsNopPath is where BusyboxRootfs puts NopELF inside the rootfs.
const RootfsNopPath = "/bin/nop"

// NopELF returns the smallest program that does something: a static ELF
// executable of one page whose only instructions are exit_group(0). The
// benchmarks run it next to busybox's true to tell vessel's own cost of an
// Exec or a pooled job from the program's: on a VM where a page fault
// costs tens of microseconds, busybox's start alone takes about two
// milliseconds, this one a tenth of that.
func NopELF() ([]byte, error) {
	var machine uint16
	var code []byte
	switch runtime.GOARCH {
	case "amd64":
		// mov eax, 231 (exit_group); xor edi, edi; syscall
		machine, code = 62, []byte{0xb8, 0xe7, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05}
	case "arm64":
		// mov x0, #0; mov x8, #94 (exit_group); svc #0
		machine = 183
		for _, w := range []uint32{0xd2800000, 0xd2800bc8, 0xd4000001} {
			code = binary.LittleEndian.AppendUint32(code, w)
		}
	default:
		return nil, fmt.Errorf("testutil.NopELF: no instructions for %s", runtime.GOARCH)
	}
	const (
		base    = 0x400000
		ehSize  = 64
		phSize  = 56
		codeOff = ehSize + phSize
	)
	le := binary.LittleEndian
	b := []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */}
	b = append(b, make([]byte, 16-len(b))...)
	b = le.AppendUint16(b, 2) // ET_EXEC
	b = le.AppendUint16(b, machine)
	b = le.AppendUint32(b, 1)            // EV_CURRENT
	b = le.AppendUint64(b, base+codeOff) // entry
	b = le.AppendUint64(b, ehSize)       // program headers
	b = le.AppendUint64(b, 0)            // no section headers
	b = le.AppendUint32(b, 0)            // flags
	b = le.AppendUint16(b, ehSize)       // header size
	b = le.AppendUint16(b, phSize)       // program header size
	b = le.AppendUint16(b, 1)            // one program header
	b = append(b, 0, 0, 0, 0, 0, 0)      // no sections, no names
	size := uint64(codeOff + len(code))  // the whole file is the segment
	b = le.AppendUint32(b, 1)            // PT_LOAD
	b = le.AppendUint32(b, 5)            // PF_R|PF_X
	b = le.AppendUint64(b, 0)            // from file offset 0
	b = le.AppendUint64(b, base)         // vaddr
	b = le.AppendUint64(b, base)         // paddr
	b = le.AppendUint64(b, size)         // filesz
	b = le.AppendUint64(b, size)         // memsz
	b = le.AppendUint64(b, 0x1000)       // align
	return append(b, code...), nil
}
