// Package oci converts between the OCI runtime specification
// (github.com/opencontainers/runtime-spec, the config.json of a bundle) and
// vessel's Config, and holds the bundle and state helpers of the
// runc-compatible command line.
//
// FromSpec reads the whole Linux part of a spec into a *vessel.Config;
// ToSpec writes a Config back as a spec that FromSpec maps to an equal
// Config. Whatever vessel cannot honour is an error naming the spec field by
// its JSON path ("linux.intelRdt", "mounts[3].options"), wrapping
// ErrNotSupported when vessel lacks the feature; nothing is silently
// dropped. Every string of the spec is checked for NUL bytes, and the host
// and domain names are RFC 1123 names (validate.go). Hooks are not part of a Config: HooksOf returns them for the
// command line to run at the points the specification requires.
//
// vessel provides /proc, /dev (with its default device nodes, /dev/pts,
// /dev/shm and /dev/mqueue), /sys and, on cgroup v2 hosts with a cgroup
// namespace, a read-only /sys/fs/cgroup by itself. A spec mount of the
// standard form at one of those destinations (what `runc spec` writes)
// is folded into vessel's own mount instead of being mounted twice; a
// different mount at the same place is mounted over vessel's, except /dev,
// which must be vessel's own so that the default devices exist.
//
// Layering: unlike the other subpackages, oci sits above the root package,
// as cmd/vessel does: it imports github.com/openvessel/vessel, and the root
// package must never import oci. oci must not start containers; besides
// converting and reading or writing bundle files, it keeps the OCI
// runtime's per-container state records under a root directory
// (state.go: atomic writes, a lock per container), and nothing else.
package oci
