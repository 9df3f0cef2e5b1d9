package probe

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// rlimitNames maps getrlimit resource numbers to their names.
var rlimitNames = map[int]string{
	unix.RLIMIT_CPU: "RLIMIT_CPU", unix.RLIMIT_FSIZE: "RLIMIT_FSIZE",
	unix.RLIMIT_DATA: "RLIMIT_DATA", unix.RLIMIT_STACK: "RLIMIT_STACK",
	unix.RLIMIT_CORE: "RLIMIT_CORE", unix.RLIMIT_RSS: "RLIMIT_RSS",
	unix.RLIMIT_NPROC: "RLIMIT_NPROC", unix.RLIMIT_NOFILE: "RLIMIT_NOFILE",
	unix.RLIMIT_MEMLOCK: "RLIMIT_MEMLOCK", unix.RLIMIT_AS: "RLIMIT_AS",
	unix.RLIMIT_LOCKS: "RLIMIT_LOCKS", unix.RLIMIT_SIGPENDING: "RLIMIT_SIGPENDING",
	unix.RLIMIT_MSGQUEUE: "RLIMIT_MSGQUEUE", unix.RLIMIT_NICE: "RLIMIT_NICE",
	unix.RLIMIT_RTPRIO: "RLIMIT_RTPRIO", unix.RLIMIT_RTTIME: "RLIMIT_RTTIME",
}

// Collect gathers a Report about the calling process. fds is the descriptor
// table to report (see InheritedFDs); pass nil to read it now.
func Collect(fds map[int]string) *Report {
	r := &Report{Errors: map[string]string{}}
	fail := func(field string, err error) {
		if err != nil {
			r.Errors[field] = err.Error()
		}
	}
	if fds == nil {
		var err error
		fds, err = InheritedFDs()
		fail("fds", err)
	}
	r.FDs = fds

	r.PID, r.PPID = os.Getpid(), os.Getppid()
	var err error
	r.PGID, err = unix.Getpgid(0)
	fail("pgid", err)
	r.SID, err = unix.Getsid(0)
	fail("sid", err)
	r.UID, r.GID, r.EUID, r.EGID = os.Getuid(), os.Getgid(), os.Geteuid(), os.Getegid()
	r.Groups, err = unix.Getgroups()
	if r.Groups == nil {
		r.Groups = []int{}
	}
	fail("groups", err)

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		fail("hostname", err)
		fail("domainname", err)
		fail("kernel", err)
	} else {
		r.Hostname = unix.ByteSliceToString(uts.Nodename[:])
		r.Domainname = unix.ByteSliceToString(uts.Domainname[:])
		r.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	r.Cwd, err = os.Getwd()
	fail("cwd", err)
	r.Exe, err = os.Readlink("/proc/self/exe")
	fail("exe", err)
	r.Args = os.Args
	r.Env = os.Environ()

	status, err := readString("/proc/self/status")
	if err != nil {
		for _, f := range []string{"nspid", "umask", "capabilities", "no_new_privs", "seccomp", "seccomp_filters", "cpus_allowed"} {
			fail(f, err)
		}
	} else {
		r.collectStatus(ParseStatus(status))
	}

	r.UIDMap, err = readIDMap("/proc/self/uid_map")
	fail("uid_map", err)
	r.GIDMap, err = readIDMap("/proc/self/gid_map")
	fail("gid_map", err)
	sg, err := readString("/proc/self/setgroups")
	r.Setgroups = strings.TrimSpace(sg)
	fail("setgroups", err)

	r.Namespaces, err = readNamespaces("/proc/self/ns")
	fail("namespaces", err)
	if text, err := readString("/proc/self/cgroup"); err != nil {
		fail("cgroups", err)
	} else {
		r.Cgroups, err = ParseCgroup(text)
		fail("cgroups", err)
	}

	if abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION); errno != 0 {
		fail("landlock_abi", fmt.Errorf("landlock_create_ruleset: %w", errno))
	} else {
		r.LandlockABI = int(abi)
	}
	if d, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE, 0, 0, 0, 0, 0); errno != 0 {
		fail("dumpable", fmt.Errorf("prctl(PR_GET_DUMPABLE): %w", errno))
	} else {
		r.Dumpable = int(d)
	}
	if label, err := readString("/proc/self/attr/current"); err == nil {
		r.LSMLabel = strings.TrimRight(label, "\x00\n")
	} else if !os.IsNotExist(err) && !isErrno(err, unix.EINVAL) {
		fail("lsm_label", err)
	}

	if text, err := readString("/proc/self/mountinfo"); err != nil {
		fail("mounts", err)
	} else {
		r.Mounts, err = ParseMountInfo(text)
		fail("mounts", err)
	}

	r.Rlimits = map[string]Rlimit{}
	var rlErrs []string
	for res, name := range rlimitNames {
		var rl unix.Rlimit
		if err := unix.Getrlimit(res, &rl); err != nil {
			rlErrs = append(rlErrs, name+": "+err.Error())
			continue
		}
		r.Rlimits[name] = Rlimit{Cur: rl.Cur, Max: rl.Max}
	}
	if len(rlErrs) > 0 {
		sort.Strings(rlErrs)
		r.Errors["rlimits"] = strings.Join(rlErrs, "; ")
	}
	if s, err := readString("/proc/self/oom_score_adj"); err != nil {
		fail("oom_score_adj", err)
	} else {
		r.OOMScoreAdj, err = strconv.Atoi(strings.TrimSpace(s))
		fail("oom_score_adj", err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		fail("num_cpu", err)
	} else {
		r.NumCPU = set.Count()
	}

	r.Clocks.Monotonic, err = clock(unix.CLOCK_MONOTONIC)
	fail("clocks.monotonic", err)
	r.Clocks.Boottime, err = clock(unix.CLOCK_BOOTTIME)
	fail("clocks.boottime", err)
	r.Clocks.Realtime, err = clock(unix.CLOCK_REALTIME)
	fail("clocks.realtime", err)

	r.Interfaces, err = interfaces()
	fail("interfaces", err)
	r.EtcHostname, err = readString("/etc/hostname")
	fail("etc_hostname", err)
	r.EtcHosts, err = readString("/etc/hosts")
	fail("etc_hosts", err)
	r.EtcResolvConf, err = readString("/etc/resolv.conf")
	fail("etc_resolv_conf", err)

	r.TTY.Stdin, r.TTY.Stdout, r.TTY.Stderr = isatty(0), isatty(1), isatty(2)
	r.TTY.Name, err = os.Readlink("/proc/self/fd/0")
	fail("tty.name", err)
	if stat, err := readString("/proc/self/stat"); err != nil {
		fail("tty.controlling_tty", err)
	} else {
		r.TTY.ControllingTTY, err = statField(stat, 7)
		fail("tty.controlling_tty", err)
	}

	r.ProcCount, err = countProcesses()
	fail("proc_count", err)
	return r
}

func (r *Report) collectStatus(st map[string]string) {
	var err error
	need := func(field, key string) (string, bool) {
		v, ok := st[key]
		if !ok {
			r.Errors[field] = "no " + key + ": line in /proc/self/status"
		}
		return v, ok
	}
	if v, ok := need("nspid", "NSpid"); ok {
		if r.NSPID, err = ParseIntList(v); err != nil {
			r.Errors["nspid"] = err.Error()
		}
	}
	if v, ok := need("umask", "Umask"); ok {
		r.Umask = v
	}
	var capErrs []string
	for _, c := range []struct {
		key string
		dst *CapSet
	}{
		{"CapInh", &r.Capabilities.Inheritable}, {"CapPrm", &r.Capabilities.Permitted},
		{"CapEff", &r.Capabilities.Effective}, {"CapBnd", &r.Capabilities.Bounding},
		{"CapAmb", &r.Capabilities.Ambient},
	} {
		v, ok := st[c.key]
		if !ok {
			capErrs = append(capErrs, "no "+c.key+": line")
			continue
		}
		if *c.dst, err = ParseCapSet(v); err != nil {
			capErrs = append(capErrs, err.Error())
		}
	}
	if len(capErrs) > 0 {
		r.Errors["capabilities"] = strings.Join(capErrs, "; ")
	}
	if v, ok := need("no_new_privs", "NoNewPrivs"); ok {
		r.NoNewPrivs = v == "1"
	}
	if v, ok := need("seccomp", "Seccomp"); ok {
		if r.Seccomp, err = strconv.Atoi(v); err != nil {
			r.Errors["seccomp"] = err.Error()
		}
	}
	if v, ok := need("seccomp_filters", "Seccomp_filters"); ok {
		if r.SeccompFilters, err = strconv.Atoi(v); err != nil {
			r.Errors["seccomp_filters"] = err.Error()
		}
	}
	if v, ok := need("cpus_allowed", "Cpus_allowed_list"); ok {
		r.CPUsAllowed = v
	}
}

// InheritedFDs lists the calling process's open file descriptors that are
// not close-on-exec, with their /proc/self/fd link targets. Descriptors
// without close-on-exec are the ones a process inherits across execve; the
// ones the Go runtime opens for itself (for example to watch its cgroup CPU
// limit) are close-on-exec and left out, as is the one used for the listing.
func InheritedFDs() (map[int]string, error) {
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc/self/fd: %w", err)
	}
	defer unix.Close(dfd)
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.ReadDirent(dfd, buf)
		if err != nil {
			return nil, fmt.Errorf("read /proc/self/fd: %w", err)
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	out := make(map[int]string, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == dfd {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		lbuf := make([]byte, 4096)
		n, err := unix.Readlink("/proc/self/fd/"+name, lbuf)
		if err != nil {
			out[fd] = "?" + err.Error()
			continue
		}
		out[fd] = string(lbuf[:n])
	}
	return out, nil
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func readIDMap(path string) ([]IDMapEntry, error) {
	text, err := readString(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseIDMap(text)
	if m == nil && err == nil {
		m = []IDMapEntry{}
	}
	return m, err
}

func readNamespaces(dir string) (map[string]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(entries))
	var errs []string
	for _, e := range entries {
		link, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		_, ino, err := ParseNamespaceLink(link)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out[e.Name()] = ino
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func clock(id int32) (Timespec, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return Timespec{}, err
	}
	return Timespec{Sec: ts.Sec, Nsec: ts.Nsec}, nil
}

func interfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(ifs))
	var errs []string
	for _, ifc := range ifs {
		i := Interface{
			Name: ifc.Name, Index: ifc.Index, MTU: ifc.MTU,
			HardwareAddr: ifc.HardwareAddr.String(),
			Flags:        []string{},
			Up:           ifc.Flags&net.FlagUp != 0,
			Loopback:     ifc.Flags&net.FlagLoopback != 0,
			Addrs:        []string{},
		}
		if ifc.Flags != 0 {
			i.Flags = strings.Split(ifc.Flags.String(), "|")
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			errs = append(errs, ifc.Name+": "+err.Error())
		}
		for _, a := range addrs {
			i.Addrs = append(i.Addrs, a.String())
		}
		out = append(out, i)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func isatty(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// statField returns field n (1-based, as in proc(5)) of /proc/PID/stat,
// which starts counting after the parenthesised command name.
func statField(stat string, n int) (int, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if n-3 < 0 || n-3 >= len(f) {
		return 0, fmt.Errorf("stat has no field %d", n)
	}
	return strconv.Atoi(f[n-3])
}

func countProcesses() (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n, nil
}

func isErrno(err error, want unix.Errno) bool {
	e, ok := errnoOf(err)
	return ok && e == want
}
