package security

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/steperr"
)

// Credential is the identity the container process takes on.
type Credential struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// Groups are the supplementary groups. Nil or empty clears them; where
	// setgroups(2) is denied (a user namespace with /proc/self/setgroups
	// set to "deny") they are left as they are when none are asked for.
	Groups []uint32 `json:"groups,omitempty"`
}

// StepError is returned by [Apply]: which step failed and why. Err is
// usually a syscall.Errno. It is vessel's one step-error type
// (steperr.Error); Apply leaves Path empty.
type StepError = steperr.Error

func stepErr(step string, err error) error {
	if err == nil {
		return nil
	}
	return &StepError{Step: step, Err: err}
}

// Apply puts the prepared profile and the credential into effect for the
// calling thread, which must be locked to its goroutine
// (runtime.LockOSThread) and must be the thread that calls execve right
// after: capabilities, securebits, keep-caps, no_new_privs, Landlock and
// the seccomp filter are per-thread attributes, and execve carries the
// calling thread's ones into the new program (the other threads of a Go
// process die at execve). The uid, gid and groups change for every thread
// (Go's syscall.Setresuid and friends do that).
//
// The order is fixed by the kernel's rules:
//
//  1. bounding set drop (PR_CAPBSET_DROP needs CAP_SETPCAP, so before the
//     uid changes);
//  2. securebits and PR_SET_KEEPCAPS, so that the permitted set survives the
//     change to a non-zero uid;
//  3. setgroups, setresgid, setresuid;
//  4. capset of effective, permitted and inheritable (this thread);
//  5. ambient set: clear, then raise each asked capability;
//  6. PR_SET_KEEPCAPS off again;
//  7. no_new_privs;
//  8. Landlock (needs no_new_privs, which it sets itself if needed);
//  9. seccomp, last, so that the filter does not have to allow the calls
//     above, only execve and what the Go runtime does until then.
//
// One exception: without no_new_privs, loading a filter needs
// CAP_SYS_ADMIN. If the final capability set lacks it (and there is no
// Landlock ruleset, which forces no_new_privs), the filter is loaded first,
// before step 1, while the thread still has it; the filter must then allow
// prctl, capset, setgroups, setresgid and setresuid (the default profile
// does). runc does the same.
//
// The filter is loaded on this thread only, without
// SECCOMP_FILTER_FLAG_TSYNC (unless the profile asks for it): only this
// thread survives execve, and syncing a strict filter onto the Go runtime's
// other threads could kill or wedge them (a futex wake returning an error
// makes the runtime throw) before execve is reached.
//
// Apply returns the seccomp listener file descriptor when a rule uses
// SCMP_ACT_NOTIFY, or -1. It is close-on-exec; the caller hands it to the
// supervisor (for example over its socket) before execve.
func Apply(p *Prepared, cred Credential) (listenerFD int, err error) {
	return apply(p, &cred)
}

// ApplyToThread is Apply for a thread that keeps its uid and gid (a
// supervisor that starts processes with fork+exec from this thread): it
// clears the calling thread's supplementary groups instead of changing
// credentials, which needs no stop of the program's other threads (Go's
// setuid family signals every thread), and then applies the profile as
// Apply does. Threads created from this one later inherit all of it.
func ApplyToThread(p *Prepared) (listenerFD int, err error) {
	return apply(p, nil)
}

// apply is Apply; a nil cred keeps the thread's identity.
func apply(p *Prepared, cred *Credential) (listenerFD int, err error) {
	listenerFD = -1
	if p == nil {
		p = &Prepared{}
	}
	caps := p.Capabilities
	landlockOn := p.Landlock != nil && p.Landlock.Enabled
	finalSysAdmin := cred == nil || cred.UID == 0
	if caps != nil {
		finalSysAdmin = caps.Effective&defaultCapsSysAdminMask != 0
	}
	seccompEarly := p.Seccomp != nil && !p.NoNewPrivileges && !landlockOn && !finalSysAdmin
	if seccompEarly {
		if listenerFD, err = loadSeccomp(p.Seccomp, 0); err != nil {
			return -1, err
		}
	}
	closeOnErr := func(err error) (int, error) {
		if listenerFD >= 0 {
			unix.Close(listenerFD)
		}
		return -1, err
	}

	if caps != nil {
		if err := dropBoundingSet(caps); err != nil {
			return closeOnErr(err)
		}
	}
	keepCapsLocked := false
	if p.Securebits != nil {
		bits := *p.Securebits
		keepCapsLocked = bits&secbitKeepCapsLocked != 0
		if caps != nil && !keepCapsLocked {
			bits |= secbitKeepCaps
		}
		if err := unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0); err != nil {
			return closeOnErr(stepErr(fmt.Sprintf("set securebits %#x", bits), err))
		}
	} else if caps != nil {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return closeOnErr(stepErr("prctl(PR_SET_KEEPCAPS)", err))
		}
	}

	if cred != nil {
		if err := setCredential(*cred); err != nil {
			return closeOnErr(err)
		}
	} else if _, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); errno != 0 && !(errno == unix.EPERM && SetgroupsDenied()) {
		return closeOnErr(stepErr("setgroups []", errno))
	}

	if caps != nil {
		if err := setCapabilities(caps); err != nil {
			return closeOnErr(err)
		}
		if !keepCapsLocked {
			if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
				return closeOnErr(stepErr("prctl(PR_SET_KEEPCAPS, 0)", err))
			}
		}
	}

	if p.NoNewPrivileges || landlockOn {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return closeOnErr(stepErr("prctl(PR_SET_NO_NEW_PRIVS)", err))
		}
	}
	if landlockOn {
		if err := applyLandlock(p.Landlock); err != nil {
			return closeOnErr(stepErr("landlock", err))
		}
	}
	if p.Seccomp != nil && !seccompEarly {
		if listenerFD, err = loadSeccomp(p.Seccomp, 0); err != nil {
			return -1, err
		}
	}
	return listenerFD, nil
}

// dropBoundingSet removes from the calling thread's bounding set every
// capability not in c.Bounding. It needs CAP_SETPCAP. Every number up to 63
// is dropped (the kernel answers EINVAL for those it does not have), so a
// CapSets built by hand without LastCap cannot leave capabilities behind.
func dropBoundingSet(c *CapSets) error {
	for i := 0; i < 64; i++ {
		if c.Bounding&(1<<uint(i)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil && err != unix.EINVAL {
			return stepErr(fmt.Sprintf("drop %s from the bounding set", maskNames(1<<uint(i))), err)
		}
	}
	return nil
}

// setCredential sets supplementary groups, gid and uid for all threads.
func setCredential(cred Credential) error {
	groups := make([]int, len(cred.Groups))
	for i, g := range cred.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		if !(len(groups) == 0 && errors.Is(err, syscall.EPERM) && SetgroupsDenied()) {
			return stepErr(fmt.Sprintf("setgroups %v", cred.Groups), err)
		}
	}
	if err := syscall.Setresgid(int(cred.GID), int(cred.GID), int(cred.GID)); err != nil {
		return stepErr(fmt.Sprintf("setresgid %d", cred.GID), err)
	}
	if err := syscall.Setresuid(int(cred.UID), int(cred.UID), int(cred.UID)); err != nil {
		return stepErr(fmt.Sprintf("setresuid %d", cred.UID), err)
	}
	return nil
}

// SetgroupsDenied reports whether setgroups(2) is denied in the calling
// process's user namespace (/proc/self/setgroups says "deny"), read once:
// a process that will lose sight of its own /proc entries (a container's
// init, once the container's /proc replaces the one it is in) calls it
// before.
var SetgroupsDenied = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("deny"))
})

// setCapabilities sets the effective, permitted and inheritable sets of the
// calling thread, then its ambient set.
func setCapabilities(c *CapSets) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0].Effective, data[1].Effective = uint32(c.Effective), uint32(c.Effective>>32)
	data[0].Permitted, data[1].Permitted = uint32(c.Permitted), uint32(c.Permitted>>32)
	data[0].Inheritable, data[1].Inheritable = uint32(c.Inheritable), uint32(c.Inheritable>>32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return stepErr("capset", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return stepErr("clear the ambient set", err)
	}
	for i := 0; i < 64; i++ {
		if c.Ambient&(1<<uint(i)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
			return stepErr(fmt.Sprintf("raise ambient %s", maskNames(1<<uint(i))), err)
		}
	}
	return nil
}

// loadSeccomp installs the filter on the calling thread with
// seccomp(SECCOMP_SET_MODE_FILTER). flags are SECCOMP_FILTER_FLAG_* bits
// added to the program's own; SECCOMP_FILTER_FLAG_NEW_LISTENER is added
// when the program has notify rules, and the listener descriptor is
// returned (else -1). The thread needs no_new_privs or CAP_SYS_ADMIN.
func loadSeccomp(p *Program, flags uint) (listenerFD int, err error) {
	if p == nil {
		return -1, nil
	}
	if len(p.Filter) == 0 || len(p.Filter) > maxInsns {
		return -1, stepErr("seccomp", fmt.Errorf("program has %d instructions (want 1 to %d)", len(p.Filter), maxInsns))
	}
	flags |= p.Flags
	if p.Listener {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
		}
	}
	filter := make([]unix.SockFilter, len(p.Filter))
	for i, f := range p.Filter {
		filter[i] = unix.SockFilter{Code: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return -1, stepErr("seccomp(SECCOMP_SET_MODE_FILTER)", errno)
	}
	if p.Listener {
		return int(r), nil
	}
	return -1, nil
}
