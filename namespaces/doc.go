// Package namespaces describes the Linux namespaces a container gets: which
// kinds are new, which are shared with the host, and which are joined from
// an existing namespace file (/proc/PID/ns/KIND or a bind-mounted one). It
// also holds user-namespace id mappings and time-namespace clock offsets,
// and the small helpers that turn those into clone flags or setns calls.
//
// It must not start processes or mount anything: it computes flags,
// validates paths and performs setns/unshare on the calling thread only
// when asked to by the container child.
package namespaces
