package security

import (
	"strings"
	"sync"
)

// Terminal ioctl requests the default profile refuses (the same numbers
// on x86_64 and aarch64, both asm-generic).
const (
	ioctlTIOCSTI   = 0x5412
	ioctlTIOCLINUX = 0x541c
)

// defaultAllowed is the allow-list of the default profile: the system calls
// an ordinary program needs that do not reach kernel state shared beyond the
// container. Names of other architectures are listed too (the compiler skips
// those the target does not have), so the list reads the same everywhere.
var defaultAllowed = sync.OnceValue(func() []string {
	return strings.Fields(`
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat
dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group
faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2
fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr
fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64
futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage
getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32
getxattr getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lchown32 lgetxattr link linkat listen listxattr listxattrat llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync
munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat
openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat
renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`)
})

// Namespace flags of clone(2): CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS,
// CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET.
const cloneNamespaceFlags = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

// Personality values a container may set: PER_LINUX, UNAME26, PER_LINUX32,
// UNAME26|PER_LINUX32, and 0xffffffff (query the current persona).
var safePersonalities = []uint64{0x0, 0x0008, 0x20000, 0x20008, 0xffffffff}

// DefaultSeccomp returns vessel's default seccomp profile. It matches the
// coverage of Docker's default profile: an allow-list, EPERM for every
// known system call not on it, ENOSYS for system calls newer than the
// profile, clone only without namespace flags, clone3 answered with ENOSYS
// (so libc falls back to clone, whose flags can be checked), personality
// only with safe values, and the privileged calls (mount, unshare, setns,
// bpf, perf_event_open, keyctl, add_key, request_key, kexec_*,
// open_by_handle_at, *_module, ptrace, ...) allowed only when the container
// holds the capability that makes them meaningful.
//
// ioctl is allowed except TIOCSTI and TIOCLINUX (EPERM whatever the
// capabilities, compared on the 32 bits the kernel reads). Unlike
// Docker's, ptrace, process_vm_readv/writev need CAP_SYS_PTRACE, and
// keyctl, add_key, request_key, kexec_load, kexec_file_load, userfaultfd,
// uselib, ustat, sysfs, vm86, nfsservctl, lookup_dcookie stay denied.
func DefaultSeccomp() *Seccomp {
	errnoENOSYS := uint(38)
	errnoEPERM := uint(1)
	s := &Seccomp{
		DefaultAction:   ActErrno,
		DefaultErrnoRet: &errnoEPERM,
		Architectures:   []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"},
		Syscalls: []Syscall{
			{Names: defaultAllowed(), Action: ActAllow},
			{Names: []string{"ioctl"}, Action: ActErrno, ErrnoRet: &errnoEPERM,
				Comment: "TIOCSTI pushes input into a terminal, which runs as whoever reads it next (the host's shell if the container holds it)",
				Args:    []Arg{{Index: 1, Value: 0xffffffff, ValueTwo: ioctlTIOCSTI, Op: OpMaskedEqual}}},
			{Names: []string{"ioctl"}, Action: ActErrno, ErrnoRet: &errnoEPERM,
				Comment: "TIOCLINUX reads and fakes the virtual console (selection paste)",
				Args:    []Arg{{Index: 1, Value: 0xffffffff, ValueTwo: ioctlTIOCLINUX, Op: OpMaskedEqual}}},
			{Names: []string{"socket"}, Action: ActAllow,
				Comment: "every address family but AF_VSOCK (40), which reaches the host",
				Args:    []Arg{{Index: 0, Value: 40, Op: OpNotEqual}}},
			{Names: []string{"arch_prctl", "modify_ldt"}, Action: ActAllow,
				Includes: &Filter{Arches: []string{"amd64"}}},
			{Names: []string{"sync_file_range2", "cacheflush", "set_tls", "arm_fadvise64_64", "arm_sync_file_range", "breakpoint"}, Action: ActAllow,
				Includes: &Filter{Arches: []string{"arm64"}}},
			{Names: []string{"clone"}, Action: ActAllow,
				Comment:  "fork and threads, but no new namespaces",
				Args:     []Arg{{Index: 0, Value: cloneNamespaceFlags, ValueTwo: 0, Op: OpMaskedEqual}},
				Excludes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
			{Names: []string{"clone3"}, Action: ActErrno, ErrnoRet: &errnoENOSYS,
				Comment:  "flags live in memory where BPF cannot read them: make libc fall back to clone",
				Excludes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
			{Names: []string{
				"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
				"mount", "mount_setattr", "move_mount", "open_tree", "open_tree_attr", "perf_event_open",
				"quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
				"umount2", "unshare", "pivot_root", "listmount", "statmount", "listns",
			}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
			{Names: []string{"open_by_handle_at"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_DAC_READ_SEARCH"}}},
			{Names: []string{"reboot"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_BOOT"}}},
			{Names: []string{"chroot"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_CHROOT"}}},
			{Names: []string{"delete_module", "init_module", "finit_module"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_MODULE"}}},
			{Names: []string{"acct"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_PACCT"}}},
			{Names: []string{"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"},
				Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_PTRACE"}}},
			{Names: []string{"iopl", "ioperm"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_RAWIO"}}},
			{Names: []string{"settimeofday", "stime", "clock_settime", "clock_settime64"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_TIME"}}},
			{Names: []string{"vhangup"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_TTY_CONFIG"}}},
			{Names: []string{"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_NICE"}}},
			{Names: []string{"syslog"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYSLOG"}}},
			{Names: []string{"bpf"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_BPF"}}},
			{Names: []string{"perf_event_open"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_PERFMON"}}},
			{Names: []string{
				// Named so the compiler knows them: they stay EPERM.
				"keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "userfaultfd",
				"uselib", "ustat", "sysfs", "vm86", "vm86old", "nfsservctl", "lookup_dcookie",
				"swapon", "swapoff", "_sysctl", "create_module", "get_kernel_syms", "query_module",
				"afs_syscall", "tuxcall", "security", "putpmsg", "getpmsg", "lsm_get_self_attr",
				"lsm_set_self_attr", "lsm_list_modules", "file_getattr", "file_setattr",
			}, Action: ActErrno, ErrnoRet: &errnoEPERM},
		},
	}
	for _, p := range safePersonalities {
		s.Syscalls = append(s.Syscalls, Syscall{Names: []string{"personality"}, Action: ActAllow,
			Args: []Arg{{Index: 0, Value: p, Op: OpEqualTo}}})
	}
	return s
}
