package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/security"
)

// minMemory is the smallest --memory accepted: below it the container's
// first processes cannot start, and docker refuses it too.
const minMemory = 6 << 20

// resourceFlags are the limits shared by `run` (and later `update`).
type resourceFlags struct {
	memory, memorySwap, memoryReservation  string
	cpus                                   string
	cpuWeight                              uint64
	cpusetCPUs, cpusetMems                 string
	pids                                   int64
	blkioWeight                            uint
	readBps, writeBps, readIOPS, writeIOPS listFlag
	ulimits                                listFlag
	oomScoreAdj                            int
	cpuTime                                time.Duration
	cgroupParent                           string
}

func (f *resourceFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 256M, 1G)")
	fs.StringVar(&f.memorySwap, "memory-swap", "", "memory plus swap limit (-1: unlimited swap)")
	fs.StringVar(&f.memoryReservation, "memory-reservation", "", "soft memory limit")
	fs.StringVar(&f.cpus, "cpus", "", "CPU quota in cores (e.g. 0.5)")
	fs.Uint64Var(&f.cpuWeight, "cpu-weight", 0, "relative CPU weight 1-10000 (default 100)")
	fs.StringVar(&f.cpusetCPUs, "cpuset-cpus", "", "CPUs the container may use (e.g. 0-1)")
	fs.StringVar(&f.cpusetMems, "cpuset-mems", "", "memory nodes the container may use")
	fs.Int64Var(&f.pids, "pids-limit", 0, "maximum number of tasks")
	fs.UintVar(&f.blkioWeight, "blkio-weight", 0, "block I/O weight 10-1000")
	fs.Var(&f.readBps, "device-read-bps", "DEVICE:RATE read limit (e.g. /dev/vda:10M; repeatable)")
	fs.Var(&f.writeBps, "device-write-bps", "DEVICE:RATE write limit (repeatable)")
	fs.Var(&f.readIOPS, "device-read-iops", "DEVICE:IOPS read limit (repeatable)")
	fs.Var(&f.writeIOPS, "device-write-iops", "DEVICE:IOPS write limit (repeatable)")
	fs.Var(&f.ulimits, "ulimit", "NAME=SOFT[:HARD] resource limit (e.g. nofile=1024:2048; repeatable)")
	fs.IntVar(&f.oomScoreAdj, "oom-score-adj", 0, "oom_score_adj of the processes (-1000..1000)")
	fs.DurationVar(&f.cpuTime, "cpu-time", 0, "kill the container after this much CPU time (e.g. 10s)")
	fs.StringVar(&f.cgroupParent, "cgroup-parent", "", "cgroup path to create the container's cgroup under (default: vessel's own cgroup)")
}

// apply adds the flags' limits to cfg; set tells which flags were given.
func (f *resourceFlags) apply(cfg *vessel.Config, set map[string]bool) error {
	size := func(name, v string) (int64, error) {
		n, err := limits.ParseSize(v)
		if err != nil {
			return 0, fmt.Errorf("--%s: %v", name, err)
		}
		return n, nil
	}
	if f.memory != "" {
		n, err := size("memory", f.memory)
		if err != nil {
			return err
		}
		if n > 0 && n < minMemory {
			return fmt.Errorf("--memory: %s is below %d MiB, the least a container starts in (as docker)", f.memory, minMemory>>20)
		}
		cfg.WithMemoryLimit(n)
	}
	if f.memorySwap != "" {
		n, err := size("memory-swap", f.memorySwap)
		if err != nil {
			return err
		}
		cfg.WithMemorySwap(n)
	}
	if f.memoryReservation != "" {
		n, err := size("memory-reservation", f.memoryReservation)
		if err != nil {
			return err
		}
		cfg.WithMemoryReservation(n)
	}
	if f.cpus != "" {
		n, err := limits.ParseCPUs(f.cpus)
		if err != nil {
			return fmt.Errorf("--cpus: %v", err)
		}
		cfg.WithCPUs(n)
	}
	if set["cpu-weight"] {
		cfg.WithCPUWeight(f.cpuWeight)
	}
	if f.cpusetCPUs != "" || f.cpusetMems != "" {
		cfg.WithCPUSet(f.cpusetCPUs, f.cpusetMems)
	}
	if set["pids-limit"] {
		cfg.WithPids(f.pids)
	}
	if set["blkio-weight"] || len(f.readBps)+len(f.writeBps)+len(f.readIOPS)+len(f.writeIOPS) > 0 {
		if cfg.Resources == nil {
			cfg.Resources = &limits.Resources{}
		}
		io := &limits.IO{}
		if set["blkio-weight"] {
			w := uint16(f.blkioWeight)
			io.Weight = &w
		}
		for _, l := range []struct {
			name string
			vals listFlag
			dst  *[]limits.DeviceRate
			iops bool
		}{{"device-read-bps", f.readBps, &io.ReadBps, false}, {"device-write-bps", f.writeBps, &io.WriteBps, false},
			{"device-read-iops", f.readIOPS, &io.ReadIOPS, true}, {"device-write-iops", f.writeIOPS, &io.WriteIOPS, true}} {
			for _, v := range l.vals {
				parse := limits.ParseDeviceRate
				if l.iops {
					parse = limits.ParseDeviceIOPS
				}
				r, err := parse(v)
				if err != nil {
					return fmt.Errorf("--%s: %v", l.name, err)
				}
				*l.dst = append(*l.dst, r)
			}
		}
		cfg.Resources.IO = io
	}
	for _, u := range f.ulimits {
		rl, err := limits.ParseRlimit(u)
		if err != nil {
			return fmt.Errorf("--ulimit: %v", err)
		}
		cfg.WithRlimit(rl)
	}
	if set["oom-score-adj"] {
		cfg.WithOOMScoreAdj(f.oomScoreAdj)
	}
	if f.cpuTime > 0 {
		cfg.WithCPUTime(f.cpuTime)
	}
	if f.cgroupParent != "" {
		cfg.Cgroup.Parent = f.cgroupParent
	}
	return nil
}

// securityFlags are the privilege settings of `run`.
type securityFlags struct {
	capAdd, capDrop listFlag
	seccomp         string
	privileged      bool
	noNewPrivs      bool
	securityOpts    listFlag
}

func (f *securityFlags) register(fs *pflag.FlagSet) {
	fs.Var(&f.capAdd, "cap-add", "capability to add (e.g. NET_ADMIN, ALL; repeatable)")
	fs.Var(&f.capDrop, "cap-drop", "capability to drop (e.g. CHOWN, ALL; repeatable)")
	fs.StringVar(&f.seccomp, "seccomp", "", "seccomp profile: a Docker/OCI JSON file, or 'unconfined'")
	fs.BoolVar(&f.privileged, "privileged", false, "all capabilities, no seccomp, the host's devices")
	fs.BoolVar(&f.noNewPrivs, "no-new-privileges", true, "set no_new_privs (false to allow setuid gains)")
	fs.Var(&f.securityOpts, "security-opt", "docker's no-new-privileges[=true|false] or seccomp=FILE|unconfined (repeatable)")
}

func (f *securityFlags) apply(cfg *vessel.Config, set map[string]bool) error {
	for _, o := range f.securityOpts {
		k, v, hasV := strings.Cut(o, "=")
		if !hasV {
			k, v, hasV = strings.Cut(o, ":")
		}
		switch k {
		case "no-new-privileges":
			on, err := strconv.ParseBool(v)
			if !hasV {
				on, err = true, nil
			}
			if err != nil {
				return fmt.Errorf("--security-opt %s: %q is not true or false", o, v)
			}
			f.noNewPrivs, set["no-new-privileges"] = on, true
		case "seccomp":
			f.seccomp = v
		case "label", "apparmor":
			return fmt.Errorf("--security-opt %s: %s is not supported by vessel", o, k)
		default:
			return fmt.Errorf("--security-opt %q: want no-new-privileges[=BOOL] or seccomp=FILE|unconfined", o)
		}
	}
	if f.privileged {
		cfg.WithPrivileged(true)
		cfg.WithSecurity(security.Privileged())
	}
	// As docker: --cap-drop ALL empties the set before --cap-add fills it;
	// otherwise additions come first and drops win.
	dropAll := slices.ContainsFunc(f.capDrop, func(c string) bool { return strings.EqualFold(c, "ALL") })
	if dropAll {
		cfg.WithCapDrop(f.capDrop...)
	}
	if len(f.capAdd) > 0 {
		cfg.WithCapAdd(f.capAdd...)
	}
	if len(f.capDrop) > 0 && !dropAll {
		cfg.WithCapDrop(f.capDrop...)
	}
	switch f.seccomp {
	case "":
	case "unconfined":
		cfg.WithSeccomp(nil)
	default:
		data, err := os.ReadFile(f.seccomp)
		if err != nil {
			return fmt.Errorf("--seccomp: %v", err)
		}
		s, err := security.LoadSeccompJSON(data)
		if err != nil {
			return fmt.Errorf("--seccomp %s: %v", f.seccomp, err)
		}
		cfg.WithSeccomp(s)
	}
	if set["no-new-privileges"] && !f.privileged {
		if cfg.Security == nil {
			cfg.WithSecurity(security.DefaultProfile())
		}
		cfg.Security.NoNewPrivileges = f.noNewPrivs
	}
	return nil
}

// networkFlags are the network settings of `run`.
type networkFlags struct {
	net                   string
	publish, firewall     listFlag
	dns                   listFlag
	egressRate, ingressRt string
	ipv6                  bool
}

func (f *networkFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.net, "network", "loopback", "network: none, loopback, host, bridge[=NAME], macvlan=PARENT, ipvlan=PARENT, netns=PATH (--net)")
	fs.VarP(&f.publish, "publish", "p", "[HOSTIP:]HOSTPORT:PORT[/tcp|udp] published port (a bridge network unless --network says otherwise; repeatable)")
	fs.Var(&f.firewall, "firewall", "allow|deny:CIDR[:PORT][/tcp|udp] egress rule, in order (repeatable)")
	fs.Var(&f.dns, "dns", "nameserver for /etc/resolv.conf (repeatable)")
	fs.StringVar(&f.egressRate, "egress-rate", "", "egress bandwidth limit in bits/s (e.g. 10M)")
	fs.StringVar(&f.ingressRt, "ingress-rate", "", "ingress bandwidth limit in bits/s (e.g. 10M)")
	fs.BoolVar(&f.ipv6, "ipv6", false, "give a bridge container an IPv6 address too")
}

func (f *networkFlags) apply(cfg *vessel.Config, set map[string]bool) error {
	mode := f.net
	if len(f.publish) > 0 && !set["network"] {
		mode = "bridge" // as docker: a published port needs a network to forward to
	}
	n, err := network.Parse(mode)
	if err != nil {
		return fmt.Errorf("--network: %v", err)
	}
	for _, p := range f.publish {
		port, err := network.ParsePort(p)
		if err != nil {
			return fmt.Errorf("--publish: %v", err)
		}
		n.Publish = append(n.Publish, port)
	}
	for _, r := range f.firewall {
		rule, err := network.ParseRule(r)
		if err != nil {
			return fmt.Errorf("--firewall: %v", err)
		}
		n.Firewall = append(n.Firewall, rule)
	}
	n.DNS = append(n.DNS, f.dns...)
	rate := func(name, v string) (uint64, error) {
		if v == "" {
			return 0, nil
		}
		r, err := parseRate(v)
		if err != nil {
			return 0, fmt.Errorf("--%s: %v", name, err)
		}
		return r, nil
	}
	if n.EgressRate, err = rate("egress-rate", f.egressRate); err != nil {
		return err
	}
	if n.IngressRate, err = rate("ingress-rate", f.ingressRt); err != nil {
		return err
	}
	n.IPv6 = f.ipv6
	cfg.WithNetwork(&n)
	return nil
}

// parseRate parses a bandwidth in bits per second: 500k, 10M, 1G
// (powers of 1000, as tc and network gear count), with an optional "bit"
// or "bps" suffix.
func parseRate(v string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(v))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "bit"), "bps")
	mult := uint64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult, t = 1e3, t[:len(t)-1]
		case 'm':
			mult, t = 1e6, t[:len(t)-1]
		case 'g':
			mult, t = 1e9, t[:len(t)-1]
		}
	}
	x, err := strconv.ParseFloat(t, 64)
	if err != nil || x <= 0 {
		return 0, fmt.Errorf("%q is not a rate like 10M", v)
	}
	return uint64(x * float64(mult)), nil
}

// userns parses --uidmap/--gidmap CONTAINER:HOST:SIZE.
func parseIDMaps(flagName string, vals listFlag) ([]namespaces.IDMap, error) {
	var out []namespaces.IDMap
	for _, v := range vals {
		p := strings.Split(v, ":")
		if len(p) != 3 {
			return nil, fmt.Errorf("--%s %q: want CONTAINER:HOST:SIZE", flagName, v)
		}
		var n [3]uint32
		for i := range p {
			x, err := strconv.ParseUint(p[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--%s %q: %q is not a number", flagName, v, p[i])
			}
			n[i] = uint32(x)
		}
		out = append(out, namespaces.IDMap{ContainerID: n[0], HostID: n[1], Size: n[2]})
	}
	return out, nil
}
