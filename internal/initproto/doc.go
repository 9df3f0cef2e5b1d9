// Package initproto is the wire protocol between a vessel parent (the
// controlling Go program) and the container's init process, and between that
// init and the short-lived stage that execve()s each user process.
//
// Messages are JSON objects sent one per datagram over an AF_UNIX
// SOCK_SEQPACKET socket pair, so message boundaries are kept by the kernel
// and file descriptors travel beside them (SCM_RIGHTS). The envelope is
// written by hand (a fresh init would otherwise pay for encoding/json's
// first use); a body with a codec of its own (the init's config) can go
// as a raw datagram instead (SendRaw), told apart by its leading NUL. A
// sender can also attach process credentials (SCM_CREDENTIALS): the kernel
// translates the pid into the receiver's pid namespace, which is how the
// parent learns the host pid of a process started inside a container's pid
// namespace.
//
// The parent's ends are polled (NewPolled): non-blocking, waiting in the Go
// runtime's network poller, so a message wakes one thread. The init's and
// the exec stage's ends block; the init waits in its own epoll loop.
//
// # Messages
//
// Every datagram is a Message of one Kind; Recv refuses any other kind,
// and a failure or exit report that lacks what it reports. P is the
// parent, or a program attached through the container's control socket
// (vessel.Attach), which speaks the parent's side from "start" on. I is
// the container's init, S an exec stage (a fresh exec of the init's
// binary that sets up one process and execve()s it).
//
//	kind     from  to   fields                 descriptors
//	config   P     I    raw: the init's config  stdio (spare), idmapped trees, cgroup.procs
//	config   I     S    raw: one process spec   -
//	control  I     P    -                       a new control socket end
//	ready    I     P    -                       -   (a spare is done starting)
//	ready    S     I    -                       -   (a held process waits)
//	pty      I/S   P/I  ID                      the terminal's master
//	seccomp  I/S   P/I  ID                      the seccomp notify listener (listenerPath)
//	created  I     P    ID 0, pid               -   (main process waits before execve)
//	started  I     P    ID, pid                 -   (the process has execve()d)
//	start    P     I    payload: hook state     -   (release the created process)
//	start    I     S    -                       -   (release a held stage)
//	start    S     I    -                       -   (about to execve)
//	exec     P     I    ID n>0, payload         stdio (none with a terminal), extra files
//	signal   P     I    ID (0 main, n, -1 all), Signal
//	error    I/S   P/I  ID, Error (step, path, errno, message)
//	exit     I     P    ID, Exit (code, signal, core)
//
// A pid travels as credentials, or, where the kernel refuses those, as a
// pidfd (SendAs); Received.PidOf reads either. The exec request's payload
// and the configs' codecs belong to internal/child, which owns their
// meaning; this package carries them.
//
// A failure is a *steperr.Error on each side (vessel.SetupError to the
// caller): InfoOf turns it into the ErrorInfo that crosses the socket,
// ErrorInfo.StepError back, keeping step, path, message and errno, so
// errors.As and errors.Is work on the parent's side as in the child. An
// init forwards a stage's report as it came.
//
// # Sequences
//
// Start (vessel.Container.Start; Create stops at "created"), with a fresh
// init or one a Spares pool started ahead:
//
//	sequenceDiagram
//	  participant P as parent
//	  participant I as init
//	  participant S as exec stage
//	  P->>I: clone (namespaces, cgroup) with the socket as fd 3
//	  opt a spare, while it waits
//	    I->>P: control (new socket made in the init's netns)
//	    I->>P: ready
//	  end
//	  Note over P: cgroup limits, id maps, hooks, network, idmapped mounts
//	  P->>I: config (raw) + descriptors
//	  opt a fresh init, or one that joins a netns
//	    I->>P: control (new socket made in its final netns)
//	  end
//	  Note over I: root filesystem, pivot_root, security profile
//	  alt the init forks the process itself (direct)
//	    Note over I: fork, execve in the container
//	  else through an exec stage
//	    I->>S: config (raw process spec)
//	    opt a listener for a seccomp agent: the profile is applied here
//	      S->>I: seccomp (listener)
//	    end
//	    opt Create
//	      S->>I: ready
//	      I->>P: created (pid)
//	      P->>I: start (hook state)
//	      I->>S: start
//	    end
//	    S->>I: start (about to execve), then end of file
//	  end
//	  opt terminal
//	    I->>P: pty (master)
//	  end
//	  opt a seccomp listener came (before created, with Create)
//	    I->>P: seccomp (listener)
//	  end
//	  I->>P: started (pid) or error (step, path, errno)
//	  I->>P: exit (code, signal) when the process ends
//
// Exec (vessel.Container.Exec, Client.Exec), any number at once, each
// under its own ID:
//
//	sequenceDiagram
//	  participant P as parent
//	  participant I as init
//	  participant S as exec stage
//	  P->>I: exec (ID n, request) + stdio, extra files
//	  I->>S: config (raw process spec)
//	  S->>I: start, then end of file (or error)
//	  opt terminal
//	    I->>P: pty (ID n, master)
//	  end
//	  opt a seccomp listener (S->>I before its start)
//	    I->>P: seccomp (ID n, listener)
//	  end
//	  I->>P: started (ID n, pid) or error (ID n)
//	  P->>I: signal (ID n) as often as wanted
//	  I->>P: exit (ID n, code, signal)
//
// Restore (vessel.Restore): a fresh init runs criu as its main process
// instead of the workload; criu brings the tree back as the init's child.
//
//	sequenceDiagram
//	  participant P as parent
//	  participant I as init
//	  participant C as criu
//	  P->>I: clone with criu's descriptors as extra files
//	  Note over P: cgroup, network; the generated files criu mounts
//	  P->>I: config (raw, with the criu command)
//	  I->>P: control (socket in the init's netns, to be dumped again)
//	  I->>C: fork, execve criu restore
//	  C-->>P: RPC over its own socket: notifications, PTY master
//	  C->>I: the restored tree, as the init's child
//	  Note over I: enters the tree's mount, pid, UTS, IPC, cgroup ns
//	  I->>P: started (pid of the restored root) or error
//	  I->>P: exit when the restored root ends
//
// This package must not know what a container is: it carries opaque
// payloads (JSON or raw) and a small fixed envelope. It must not start
// processes, change namespaces or touch the filesystem.
package initproto
