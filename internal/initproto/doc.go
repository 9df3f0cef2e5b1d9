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
// This package must not know what a container is: it carries opaque
// payloads (JSON or raw) and a small fixed envelope. It must not start
// processes, change namespaces or touch the filesystem.
package initproto
