// Package steperr holds the one error type vessel packages return when a
// step of setting a container up failed: Step names what was being done
// ("mount /proc", "pivot_root", "apply seccomp filter", "exec"), Path the
// file or object it worked on, and Err the cause, often a syscall.Errno,
// so errors.Is(err, fs.ErrNotExist) and friends work on it.
//
// vessel.SetupError, rootfs.Error and security.StepError are this type
// (aliases, as fs.PathError is os.PathError), so one errors.As finds the
// failed step whichever package reported it. The container's init sends
// the same fields to the parent as initproto.ErrorInfo, its wire form
// (initproto.InfoOf and ErrorInfo.StepError convert), so a step that
// failed inside the container is this type on the caller's side too.
//
// A bad configuration is not a failed step: that is fielderr's (or
// vessel.ConfigError's) business. This package must not import any other
// vessel package: all of them may import it, the container's init
// included.
package steperr
