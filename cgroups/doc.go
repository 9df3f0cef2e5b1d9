// Package cgroups places containers in control groups and enforces their
// resource limits, on all three layouts Linux hosts use: cgroup v1 (one
// hierarchy per controller), hybrid (v1 controllers plus a cgroup2 hierarchy
// at /sys/fs/cgroup/unified, usually with no controllers) and v2 (one
// unified hierarchy).
//
// A [Manager] owns one container's cgroup in every hierarchy. On a hybrid
// host it also creates the container's cgroup in the unified hierarchy and
// uses it for pressure-stall information and CLONE_INTO_CGROUP (see
// [Manager.FD]); freezing, killing and listing go through the v1
// hierarchies there, which hold the container alone (its supervisor may
// share the unified cgroup).
// Limits come from package limits; device rules become writes to the v1
// devices controller or, on v2, an eBPF device program this package
// assembles and loads with bpf(2) itself (devfilter.go).
//
// This package creates cgroups only below the parent it is given (by
// default the calling process's own cgroup in each hierarchy) and writes
// only to cgroups it created, with one exception the cgroup v2 model
// forces: enabling a controller in the parent's cgroup.subtree_control when
// a requested limit needs it. It never mounts, unmounts or moves
// controllers, and never moves processes it was not given. Destroy removes
// what it created except the parent directories in a v1 cpuset hierarchy,
// which stay like a runtime's parent cgroup so that the kernel does not
// re-patch its code at every container start and stop; RemoveGroup takes
// them (and any other empty cgroup of the group) away when a program is
// done.
package cgroups
