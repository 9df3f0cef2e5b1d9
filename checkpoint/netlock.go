package checkpoint

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
)

// lockTables remembers CRIU's network-lock tables (nftables tables named
// CRIU-...) present in a tree's network namespace before an operation,
// so that those the operation leaves behind can be removed.
type lockTables struct {
	ns     *os.File
	before map[string]bool
}

// newLockTables opens pid's network namespace and lists its CRIU tables;
// nil-safe when the namespace cannot be read (nothing is removed then).
func newLockTables(pid int) *lockTables {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil
	}
	names, err := criuTables(ns)
	if err != nil {
		ns.Close()
		return nil
	}
	lt := &lockTables{ns: ns, before: map[string]bool{}}
	for _, t := range names {
		lt.before[t.Name] = true
	}
	return lt
}

// removeNew deletes the CRIU tables that appeared since newLockTables.
func (lt *lockTables) removeNew() {
	if lt == nil {
		return
	}
	defer lt.ns.Close()
	_ = RemoveLockTables(lt.ns, func(name string) bool { return !lt.before[name] })
}

// criuTables lists the inet tables named CRIU... in the namespace ns.
func criuTables(ns *os.File) ([]*nftables.Table, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return nil, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	var out []*nftables.Table
	for _, t := range tables {
		if strings.HasPrefix(t.Name, "CRIU") {
			out = append(out, t)
		}
	}
	return out, nil
}

// RemoveLockTables deletes, in the network namespace ns, the nftables
// tables CRIU uses as its network lock (inet CRIU-...) for which remove
// returns true (nil: all of them). A dump that kills its tree leaves its
// lock behind on purpose (a restored copy takes over the connections);
// in a namespace that outlives the tree it would drop all traffic.
func RemoveLockTables(ns *os.File, remove func(name string) bool) error {
	tables, err := criuTables(ns)
	if err != nil {
		return err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return err
	}
	n := 0
	for _, t := range tables {
		if remove == nil || remove(t.Name) {
			c.DelTable(t)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return c.Flush()
}
