package main

import (
	"encoding/json"
	"errors"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/oci"
)

// ociBeancounters prints a running container's beancounters, one line per
// finite resource with held, maxheld, limit and failcnt, as OpenVZ's
// /proc/user_beancounters does (vessel.Usage.WriteTable), or as JSON.
func ociBeancounters(g *globalOpts, args []string) int {
	const usage = "[--json] ID"
	fs := newAliasFlags("beancounters")
	var asJSON bool
	fs.boolean(&asJSON, "print the table as JSON (vessel.Usage)", "json")
	id, code, ok := g.parseOneID(fs.FlagSet, "beancounters", usage, args)
	if !ok {
		return code
	}
	_, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	lock.Unlock()
	if g.statusOf(rec) == specs.StateStopped {
		return g.errorf("container %s is not running", id)
	}
	u, err := usageOf(rec)
	if err != nil {
		return g.errorf("beancounters %s: %v", id, err)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(u); err != nil {
			return g.errorf("%v", err)
		}
		return 0
	}
	if err := u.WriteTable(os.Stdout, id); err != nil {
		return g.errorf("%v", err)
	}
	return 0
}

// usageOf reads the usage of the container rec records. The peaks vessel
// keeps itself are those of this one reading: the kernel's own peaks
// (memory, tasks) cover the container's whole life.
func usageOf(rec *oci.Record) (*vessel.Usage, error) {
	cg, err := cgroupOf(rec)
	if err != nil {
		return nil, err
	}
	if cg == nil {
		return nil, errNoCgroup
	}
	src := vessel.UsageSource{Cgroup: cg, Pid: rec.Main.Pid, Config: rec.Config}
	if rec.Config.Rootfs.Quota > 0 {
		src.QuotaMethod = "quota"
	}
	if rec.Network {
		if a, err := network.DefaultManager.Attachment(rec.ID); err == nil {
			src.HostInterface = a.HostInterface()
		}
	}
	return vessel.ReadUsage(src)
}

var errNoCgroup = errors.New("the container has no cgroup to account it by")
