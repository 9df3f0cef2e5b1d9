// Package exampletest holds what the tests of vessel's example programs
// share: building an example into a static binary, running it, and
// checking that a run left nothing behind on the host (cgroups, mounts,
// network links, nftables tables).
//
// It is for the examples' tests only; the example programs themselves
// never import it, and it must not change anything on the host beyond
// the temporary directory a build goes into.
package exampletest
