// Package checkpoint saves a running process tree to disk and brings it
// back, with CRIU (https://criu.org) driven through its RPC interface
// (`criu swrk`), whose messages (and the image files it reads) are
// encoded with a small wire codec here (wire.go): the protobuf module
// (go-criu's generated types, even protowire) would cost every program
// that links vessel time at start.
//
// It knows processes, image directories and CRIU's options; it knows
// nothing of vessel's containers (the root package maps a container onto
// Options: its mounts, its cgroup, its control socket). It also moves
// images between hosts for live migration (Migrate, Receive): memory
// pages through CRIU's page server on the migration connection itself
// (Options.PageServer, ServePages), the other images as a tar stream.
//
// Before a dump it inspects the tree without stopping it (Check) and
// refuses what CRIU cannot dump; a dump can hand its images over while
// the tree is still frozen (Options.Handoff), which makes migration all
// or nothing; criu may be run by someone else (Options.LaunchCriu: vessel
// runs a restore's criu from a container's fresh init).
//
// It must not start processes other than criu itself, and never changes
// the host beyond what CRIU does for the requested operation: images go
// only where the caller says, a failed restore leaves no process of the
// restored tree running (CRIU kills what it had begun to restore), and
// the network lock a dump leaves in a namespace that outlives the tree is
// removed.
package checkpoint
