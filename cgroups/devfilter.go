package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/limits"
)

// The cgroup v2 device controller is an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. vessel builds it
// from the rules with the handful of instructions it needs and loads it
// with the bpf(2) system call directly.

// eBPF instruction encoding (linux/bpf.h, linux/bpf_common.h).
const (
	bpfLdxMemW   = 0x61 // BPF_LDX | BPF_MEM | BPF_W
	bpfAlu32AndK = 0x54 // BPF_ALU | BPF_AND | BPF_K
	bpfAlu32RshK = 0x74 // BPF_ALU | BPF_RSH | BPF_K
	bpfAlu32MovX = 0xbc // BPF_ALU | BPF_MOV | BPF_X
	bpfAlu64MovK = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K
	bpfJneK      = 0x55 // BPF_JMP | BPF_JNE | BPF_K
	bpfExit      = 0x95 // BPF_JMP | BPF_EXIT

	// struct bpf_cgroup_dev_ctx: access_type (type | access<<16), major, minor.
	devCtxAccessType = 0
	devCtxMajor      = 4
	devCtxMinor      = 8

	devBlock = 1 // BPF_DEVCG_DEV_BLOCK
	devChar  = 2 // BPF_DEVCG_DEV_CHAR
	accMknod = 1 // BPF_DEVCG_ACC_MKNOD
	accRead  = 2
	accWrite = 4

	bpfProgTypeCgroupDevice = 15 // BPF_PROG_TYPE_CGROUP_DEVICE
	bpfCgroupDevice         = 6  // BPF_CGROUP_DEVICE (attach type)
	bpfFAllowMulti          = 2  // BPF_F_ALLOW_MULTI

	bpfProgLoad      = 5
	bpfProgAttach    = 8
	bpfProgDetach    = 9
	bpfProgGetFDByID = 13
	bpfProgQuery     = 16
)

// insn is one eBPF instruction.
type insn struct {
	code uint8
	regs uint8 // dst in the low nibble, src in the high one
	off  int16
	imm  int32
}

func ins(code, dst, src uint8, off int16, imm int32) insn {
	return insn{code: code, regs: dst | src<<4, off: off, imm: imm}
}

// deviceProgram compiles rules into a device program. The rules are
// tried last to first and the first that matches decides, so a later rule
// overrides an earlier one as successive writes to the v1 devices.allow
// and devices.deny files do; when none matches, access is denied. A rule
// matches a request when the type and numbers match (wildcards match
// anything) and every access asked for is among the rule's.
func deviceProgram(rules []limits.DeviceRule) ([]insn, error) {
	// r2 = type, r3 = access, r4 = major, r5 = minor.
	prog := []insn{
		ins(bpfLdxMemW, 2, 1, devCtxAccessType, 0),
		ins(bpfAlu32AndK, 2, 0, 0, 0xffff),
		ins(bpfLdxMemW, 3, 1, devCtxAccessType, 0),
		ins(bpfAlu32RshK, 3, 0, 0, 16),
		ins(bpfLdxMemW, 4, 1, devCtxMajor, 0),
		ins(bpfLdxMemW, 5, 1, devCtxMinor, 0),
	}
	decided := false
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		var acc int32
		for _, c := range r.Access {
			switch c {
			case 'r':
				acc |= accRead
			case 'w':
				acc |= accWrite
			case 'm':
				acc |= accMknod
			default:
				return nil, fmt.Errorf("device rule %d: access %q: want letters of rwm", i, r.Access)
			}
		}
		// The block's tests jump to its end when they fail; "skip" is
		// patched with the distance once the block is complete.
		var block []insn
		switch r.Type {
		case "a":
		case "c":
			block = append(block, ins(bpfJneK, 2, 0, 0, devChar))
		case "b":
			block = append(block, ins(bpfJneK, 2, 0, 0, devBlock))
		default:
			return nil, fmt.Errorf("device rule %d: type %q: want a, b or c", i, r.Type)
		}
		if acc != accRead|accWrite|accMknod {
			block = append(block,
				ins(bpfAlu32MovX, 6, 3, 0, 0),
				ins(bpfAlu32AndK, 6, 0, 0, ^acc),
				ins(bpfJneK, 6, 0, 0, 0))
		}
		if r.Type != "a" && r.Major != limits.Wildcard {
			block = append(block, ins(bpfJneK, 4, 0, 0, int32(r.Major)))
		}
		if r.Type != "a" && r.Minor != limits.Wildcard {
			block = append(block, ins(bpfJneK, 5, 0, 0, int32(r.Minor)))
		}
		verdict := int32(0)
		if r.Allow {
			verdict = 1
		}
		tests := len(block)
		block = append(block, ins(bpfAlu64MovK, 0, 0, 0, verdict), ins(bpfExit, 0, 0, 0, 0))
		for j := range block {
			if block[j].code == bpfJneK {
				block[j].off = int16(len(block) - j - 1)
			}
		}
		prog = append(prog, block...)
		if tests == 0 {
			// It matches everything: the earlier rules can never decide
			// (and the verifier refuses unreachable instructions).
			decided = true
			break
		}
	}
	if !decided {
		prog = append(prog, ins(bpfAlu64MovK, 0, 0, 0, 0), ins(bpfExit, 0, 0, 0, 0))
	}
	if len(prog) > 4096 {
		return nil, fmt.Errorf("%d device rules make a program of %d instructions (at most 4096)", len(rules), len(prog))
	}
	return prog, nil
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// loadDeviceProgram loads prog and returns its descriptor, with the
// verifier's log in the error when it refuses.
func loadDeviceProgram(prog []insn) (int, error) {
	license := []byte("Apache-2.0\x00")
	logBuf := make([]byte, 64<<10)
	attr := struct {
		progType, insnCnt  uint32
		insns, license     uint64
		logLevel, logSize  uint32
		logBuf             uint64
		kernVersion, flags uint32
		name               [16]byte
		ifindex            uint32
		expectedAttachType uint32
	}{
		progType: bpfProgTypeCgroupDevice, insnCnt: uint32(len(prog)),
		insns:    uint64(uintptr(unsafe.Pointer(&prog[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1, logSize: uint32(len(logBuf)), logBuf: uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
		expectedAttachType: bpfCgroupDevice,
	}
	copy(attr.name[:], "vessel_devices")
	// The verifier gives up with EAGAIN when a signal is pending, and the
	// Go runtime signals its threads (preemption): try again.
	fd, err := bpf(bpfProgLoad, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	for i := 0; i < 50 && err == unix.EAGAIN; i++ {
		fd, err = bpf(bpfProgLoad, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	}
	runtime.KeepAlive(prog)
	runtime.KeepAlive(license)
	if err != nil {
		n := bytes.IndexByte(logBuf, 0)
		if n < 0 {
			n = len(logBuf)
		}
		if n > 0 {
			return -1, fmt.Errorf("%w: %s", err, logBuf[:n])
		}
		return -1, err
	}
	return fd, nil
}

type progAttach struct {
	targetFD, attachFD, attachType, flags, replaceFD uint32
}

// attachedDevicePrograms returns the ids of the device programs attached
// to the cgroup directory dirFD.
func attachedDevicePrograms(dirFD int) ([]uint32, error) {
	ids := make([]uint32, 64)
	attr := struct {
		targetFD, attachType, queryFlags, attachFlags uint32
		progIDs                                       uint64
		progCnt                                       uint32
		_                                             uint32
	}{targetFD: uint32(dirFD), attachType: bpfCgroupDevice, progIDs: uint64(uintptr(unsafe.Pointer(&ids[0]))), progCnt: uint32(len(ids))}
	_, err := bpf(bpfProgQuery, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, err
	}
	return ids[:attr.progCnt], nil
}

// attachDeviceFilter attaches an eBPF device program enforcing rules
// (after a deny-all rule: rules only open holes in a closed wall) to the
// cgroup2 directory dir, then detaches the programs attached before (by
// an earlier Create or Update), so that updates replace rather than
// stack. While both are attached the stricter of the two applies.
func attachDeviceFilter(dir string, rules []limits.DeviceRule) error {
	w := limits.Wildcard
	prog, err := deviceProgram(append([]limits.DeviceRule{{Allow: false, Type: "a", Major: w, Minor: w, Access: "rwm"}}, rules...))
	if err != nil {
		return fmt.Errorf("cgroups: building the device filter: %w", err)
	}
	dirFD, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cgroups: open %s: %w", dir, err)
	}
	defer unix.Close(dirFD)
	old, err := attachedDevicePrograms(dirFD)
	if err != nil {
		return fmt.Errorf("cgroups: querying device programs of %s: %w", dir, err)
	}
	progFD, err := loadDeviceProgram(prog)
	if err != nil {
		return fmt.Errorf("cgroups: loading the device filter: %w", err)
	}
	defer unix.Close(progFD) // the cgroup keeps its own reference
	attach := progAttach{targetFD: uint32(dirFD), attachFD: uint32(progFD), attachType: bpfCgroupDevice, flags: bpfFAllowMulti}
	if _, err := bpf(bpfProgAttach, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		return fmt.Errorf("cgroups: attaching the device filter to %s: %w", dir, err)
	}
	var errs []error
	for _, id := range old {
		errs = append(errs, detachDeviceProgram(dirFD, id))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cgroups: replacing the device filter of %s: %w", dir, err)
	}
	return nil
}

func detachDeviceProgram(dirFD int, id uint32) error {
	get := struct{ id, nextID, openFlags uint32 }{id: id}
	fd, err := bpf(bpfProgGetFDByID, unsafe.Pointer(&get), unsafe.Sizeof(get))
	if err != nil {
		return fmt.Errorf("program %d: %w", id, err)
	}
	defer unix.Close(fd)
	detach := progAttach{targetFD: uint32(dirFD), attachFD: uint32(fd), attachType: bpfCgroupDevice}
	if _, err := bpf(bpfProgDetach, unsafe.Pointer(&detach), unsafe.Sizeof(detach)); err != nil {
		return fmt.Errorf("detach program %d: %w", id, err)
	}
	return nil
}

// deviceFilterCount returns how many device programs are attached to dir.
func deviceFilterCount(dir string) (int, error) {
	dirFD, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(dirFD)
	ids, err := attachedDevicePrograms(dirFD)
	return len(ids), err
}
