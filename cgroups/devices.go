package cgroups

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/limits"
)

// DefaultDevices returns the device rules of a typical container: every
// device denied except /dev/null, zero, full, random, urandom, tty,
// console, ptmx and the pseudo-terminals below /dev/pts, and mknod of any
// character or block device (creating a node gives no access to it).
func DefaultDevices() []limits.DeviceRule {
	w := limits.Wildcard
	return []limits.DeviceRule{
		{Allow: false, Type: "a", Major: w, Minor: w, Access: "rwm"},
		{Allow: true, Type: "c", Major: w, Minor: w, Access: "m"},
		{Allow: true, Type: "b", Major: w, Minor: w, Access: "m"},
		{Allow: true, Type: "c", Major: 1, Minor: 3, Access: "rwm"},   // null
		{Allow: true, Type: "c", Major: 1, Minor: 5, Access: "rwm"},   // zero
		{Allow: true, Type: "c", Major: 1, Minor: 7, Access: "rwm"},   // full
		{Allow: true, Type: "c", Major: 1, Minor: 8, Access: "rwm"},   // random
		{Allow: true, Type: "c", Major: 1, Minor: 9, Access: "rwm"},   // urandom
		{Allow: true, Type: "c", Major: 5, Minor: 0, Access: "rwm"},   // tty
		{Allow: true, Type: "c", Major: 5, Minor: 1, Access: "rwm"},   // console
		{Allow: true, Type: "c", Major: 5, Minor: 2, Access: "rwm"},   // ptmx
		{Allow: true, Type: "c", Major: 136, Minor: w, Access: "rwm"}, // pts/*
	}
}

// specDevices converts rules to the OCI form, after a deny-all rule: the
// rules only ever open holes in a closed wall.
func specDevices(rules []limits.DeviceRule) []specs.LinuxDeviceCgroup {
	// The library wants -1, not nil, for "any number".
	num := func(n int64) *int64 { return &n }
	out := []specs.LinuxDeviceCgroup{{Allow: false, Type: "a", Major: num(-1), Minor: num(-1), Access: "rwm"}}
	for _, r := range rules {
		out = append(out, specs.LinuxDeviceCgroup{Allow: r.Allow, Type: r.Type, Major: num(r.Major), Minor: num(r.Minor), Access: r.Access})
	}
	return out
}

// attachDeviceFilter attaches an eBPF device program enforcing rules to
// the cgroup2 directory dir, then detaches the programs attached before
// (by an earlier Create or Update), so that updates replace rather than
// stack. While both are attached the stricter of the two applies.
func attachDeviceFilter(dir string, rules []limits.DeviceRule) error {
	insts, license, err := cgroup2.DeviceFilter(specDevices(rules))
	if err != nil {
		return fmt.Errorf("cgroups: building the device filter: %w", err)
	}
	dirFD, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cgroups: open %s: %w", dir, err)
	}
	defer unix.Close(dirFD)
	old, err := link.QueryPrograms(link.QueryOptions{Target: dirFD, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return fmt.Errorf("cgroups: querying device programs of %s: %w", dir, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupDevice, Instructions: insts, License: license})
	if err != nil {
		return fmt.Errorf("cgroups: loading the device filter: %w", err)
	}
	defer prog.Close() // the cgroup keeps its own reference
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: dirFD, Program: prog, Attach: ebpf.AttachCGroupDevice, Flags: unix.BPF_F_ALLOW_MULTI,
	}); err != nil {
		return fmt.Errorf("cgroups: attaching the device filter to %s: %w", dir, err)
	}
	var errs []error
	for _, p := range old.Programs {
		errs = append(errs, detachProgram(dirFD, p.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cgroups: replacing the device filter of %s: %w", dir, err)
	}
	return nil
}

func detachProgram(dirFD int, id ebpf.ProgramID) error {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return err
	}
	defer p.Close()
	return link.RawDetachProgram(link.RawDetachProgramOptions{Target: dirFD, Program: p, Attach: ebpf.AttachCGroupDevice})
}

// deviceFilterCount returns how many device programs are attached to dir.
func deviceFilterCount(dir string) (int, error) {
	dirFD, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(dirFD)
	q, err := link.QueryPrograms(link.QueryOptions{Target: dirFD, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return 0, err
	}
	return len(q.Programs), nil
}
