package child

import (
	"encoding/binary"
	"errors"
	"sort"
	"time"

	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

// The config (and an exec stage's process) travel in a compact binary
// form, written and read field by field here. encoding/json would do, but
// its first decode of these types in a fresh process builds reflection
// caches for each of them: about a millisecond of every container start.
//
// Fields go in declaration order, those JSON leaves out (json:"-") stay
// out here too. Slices, maps and pointers keep nil apart from empty:
// a count is written plus one, 0 standing for nil. codec_test.go fills
// every field of every type and checks the round trip, so a field added
// to a type and not here fails it.

// EncodeConfig returns cfg in the init's wire form.
func EncodeConfig(cfg *Config) []byte {
	var e enc
	e.config(cfg)
	return e.b
}

// decodeConfig reads what EncodeConfig wrote.
func decodeConfig(b []byte, cfg *Config) error {
	d := dec{b: b}
	d.config(cfg)
	return d.done()
}

func encodeProcess(p *Process) []byte {
	var e enc
	e.process(p)
	return e.b
}

func decodeProcess(b []byte, p *Process) error {
	d := dec{b: b}
	d.process(p)
	return d.done()
}

type enc struct{ b []byte }

func (e *enc) u(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)    { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string) { e.u(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// count writes how many elements follow, n+1, or 0 for nil.
func (e *enc) count(n int, isNil bool) bool {
	if isNil {
		e.u(0)
		return false
	}
	e.u(uint64(n) + 1)
	return true
}

func (e *enc) bytes(b []byte) {
	if e.count(len(b), b == nil) {
		e.b = append(e.b, b...)
	}
}

func (e *enc) strs(ss []string) {
	e.count(len(ss), ss == nil)
	for _, s := range ss {
		e.str(s)
	}
}

type dec struct {
	b   []byte
	err error
}

var errMalformed = errors.New("child: malformed config")

func (d *dec) fail() {
	if d.err == nil {
		d.err = errMalformed
	}
	d.b = nil
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errMalformed
	}
	return d.err
}

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bool() bool {
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail()
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (d *dec) str() string {
	n := d.u()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a count and whether the value is present (not nil). Every
// element takes at least a byte, so a count beyond the bytes left is
// malformed (and no allocation follows it).
func (d *dec) count() (int, bool) {
	n := d.u()
	if n == 0 {
		return 0, false
	}
	if n-1 > uint64(len(d.b)) {
		d.fail()
		return 0, false
	}
	return int(n - 1), true
}

func (d *dec) bytes() []byte {
	n, ok := d.count()
	if !ok {
		return nil
	}
	b := append(make([]byte, 0, n), d.b[:n]...)
	d.b = d.b[n:]
	return b
}

func (d *dec) strs() []string {
	n, ok := d.count()
	if !ok {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (e *enc) config(c *Config) {
	if e.count(0, c.Plan == nil) {
		e.plan(c.Plan)
	}
	e.count(len(c.Joins), c.Joins == nil)
	for _, j := range c.Joins {
		e.str(string(j.Kind))
		e.str(j.Path)
	}
	e.bool(c.NewCgroupNS)
	e.bool(c.NewTimeNS)
	e.i(int64(c.TimeOffsets.Monotonic))
	e.i(int64(c.TimeOffsets.Boottime))
	if e.count(0, c.Hostname == nil) {
		e.str(*c.Hostname)
	}
	if e.count(0, c.Domainname == nil) {
		e.str(*c.Domainname)
	}
	e.count(len(c.Sysctls), c.Sysctls == nil)
	keys := make([]string, 0, len(c.Sysctls))
	for k := range c.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.str(k)
		e.str(c.Sysctls[k])
	}
	e.process(&c.Process)
	e.bool(c.Detached)
	e.bool(c.NewPIDNS)
	e.i(int64(c.ListenFD))
	e.hooks(c.CreateContainerHooks)
	e.hooks(c.StartContainerHooks)
	e.bytes(c.HookState)
	e.bool(c.ReexecAfterMap)
	e.bool(c.LoopbackUp)
	e.i(int64(c.NumExtras))
	e.bool(c.Direct)
	e.count(len(c.IDMapped), c.IDMapped == nil)
	for _, v := range c.IDMapped {
		e.i(int64(v))
	}
	e.bool(c.Stdio)
	e.count(len(c.Cgroups), c.Cgroups == nil)
	for _, g := range c.Cgroups {
		e.str(g.Dir)
		e.str(g.Home)
		e.bool(g.V2)
	}
	e.bool(c.CloneParent)
	e.bool(c.ProcPidns)
	e.bool(c.CgroupNSMade)
	e.bool(c.Clone3)
	if e.count(0, c.Restore == nil) {
		e.strs(c.Restore.Args)
		e.strs(c.Restore.Env)
		e.bool(c.Restore.NetnsFD)
		if r := c.Restore.Root; e.count(0, r == nil) {
			e.str(r.Target)
			e.strs(r.Lower)
			e.str(r.Upper)
			e.str(r.Work)
		}
	}
}

func (d *dec) config(c *Config) {
	if _, ok := d.count(); ok {
		c.Plan = &rootfs.Plan{}
		d.plan(c.Plan)
	}
	if n, ok := d.count(); ok {
		c.Joins = make([]namespaces.Namespace, n)
		for i := range c.Joins {
			c.Joins[i] = namespaces.Namespace{Kind: namespaces.Kind(d.str()), Path: d.str()}
		}
	}
	c.NewCgroupNS = d.bool()
	c.NewTimeNS = d.bool()
	c.TimeOffsets.Monotonic = time.Duration(d.i())
	c.TimeOffsets.Boottime = time.Duration(d.i())
	if _, ok := d.count(); ok {
		s := d.str()
		c.Hostname = &s
	}
	if _, ok := d.count(); ok {
		s := d.str()
		c.Domainname = &s
	}
	if n, ok := d.count(); ok {
		c.Sysctls = make(map[string]string, n)
		for range n {
			k := d.str()
			c.Sysctls[k] = d.str()
		}
	}
	d.process(&c.Process)
	c.Detached = d.bool()
	c.NewPIDNS = d.bool()
	c.ListenFD = int(d.i())
	c.CreateContainerHooks = d.hooks()
	c.StartContainerHooks = d.hooks()
	c.HookState = d.bytes()
	c.ReexecAfterMap = d.bool()
	c.LoopbackUp = d.bool()
	c.NumExtras = int(d.i())
	c.Direct = d.bool()
	if n, ok := d.count(); ok {
		c.IDMapped = make([]int, n)
		for i := range c.IDMapped {
			c.IDMapped[i] = int(d.i())
		}
	}
	c.Stdio = d.bool()
	if n, ok := d.count(); ok {
		c.Cgroups = make([]CgroupPlace, n)
		for i := range c.Cgroups {
			c.Cgroups[i] = CgroupPlace{Dir: d.str(), Home: d.str(), V2: d.bool()}
		}
	}
	c.CloneParent = d.bool()
	c.ProcPidns = d.bool()
	c.CgroupNSMade = d.bool()
	c.Clone3 = d.bool()
	if _, ok := d.count(); ok {
		c.Restore = &RestoreSpec{Args: d.strs(), Env: d.strs(), NetnsFD: d.bool()}
		if _, ok := d.count(); ok {
			c.Restore.Root = &RestoreRoot{Target: d.str(), Lower: d.strs(), Upper: d.str(), Work: d.str()}
		}
	}
}

func (e *enc) hooks(hs []Hook) {
	e.count(len(hs), hs == nil)
	for _, h := range hs {
		e.str(h.Path)
		e.strs(h.Args)
		e.strs(h.Env)
		e.i(int64(h.Timeout))
	}
}

func (d *dec) hooks() []Hook {
	n, ok := d.count()
	if !ok {
		return nil
	}
	hs := make([]Hook, n)
	for i := range hs {
		hs[i] = Hook{Path: d.str(), Args: d.strs(), Env: d.strs(), Timeout: time.Duration(d.i())}
	}
	return hs
}

func (e *enc) process(p *Process) {
	e.strs(p.Args)
	e.strs(p.Env)
	e.str(p.Dir)
	e.u(uint64(p.UID))
	e.u(uint64(p.GID))
	e.count(len(p.Groups), p.Groups == nil)
	for _, g := range p.Groups {
		e.u(uint64(g))
	}
	e.bool(p.SetGroups)
	e.u(uint64(p.Umask))
	e.bool(p.TTY)
	e.u(uint64(p.Rows))
	e.u(uint64(p.Cols))
	e.bool(p.NoNewPriv)
	e.bool(p.WaitStart)
	if e.count(0, p.Security == nil) {
		e.prepared(p.Security)
	}
	e.count(len(p.Rlimits), p.Rlimits == nil)
	for _, r := range p.Rlimits {
		e.str(r.Type)
		e.u(r.Soft)
		e.u(r.Hard)
	}
	if e.count(0, p.OOMScoreAdj == nil) {
		e.i(int64(*p.OOMScoreAdj))
	}
	if e.count(0, p.Proc == nil) {
		e.strs(p.Proc.Dests)
		e.strs(p.Proc.Masked)
		e.strs(p.Proc.Readonly)
	}
	e.count(len(p.CgroupFDs), p.CgroupFDs == nil)
	for _, fd := range p.CgroupFDs {
		e.i(int64(fd))
	}
	e.bool(p.Sibling)
	e.bool(p.Idle)
}

func (d *dec) process(p *Process) {
	p.Args = d.strs()
	p.Env = d.strs()
	p.Dir = d.str()
	p.UID = uint32(d.u())
	p.GID = uint32(d.u())
	if n, ok := d.count(); ok {
		p.Groups = make([]uint32, n)
		for i := range p.Groups {
			p.Groups[i] = uint32(d.u())
		}
	}
	p.SetGroups = d.bool()
	p.Umask = uint32(d.u())
	p.TTY = d.bool()
	p.Rows = uint16(d.u())
	p.Cols = uint16(d.u())
	p.NoNewPriv = d.bool()
	p.WaitStart = d.bool()
	if _, ok := d.count(); ok {
		p.Security = &security.Prepared{}
		d.prepared(p.Security)
	}
	if n, ok := d.count(); ok {
		p.Rlimits = make([]limits.Rlimit, n)
		for i := range p.Rlimits {
			p.Rlimits[i] = limits.Rlimit{Type: d.str(), Soft: d.u(), Hard: d.u()}
		}
	}
	if _, ok := d.count(); ok {
		v := int(d.i())
		p.OOMScoreAdj = &v
	}
	if _, ok := d.count(); ok {
		p.Proc = &rootfs.ProcSwap{Dests: d.strs(), Masked: d.strs(), Readonly: d.strs()}
	}
	if n, ok := d.count(); ok {
		p.CgroupFDs = make([]int, n)
		for i := range p.CgroupFDs {
			p.CgroupFDs[i] = int(d.i())
		}
	}
	p.Sibling = d.bool()
	p.Idle = d.bool()
}

func (e *enc) prepared(p *security.Prepared) {
	if c := p.Capabilities; e.count(0, c == nil) {
		for _, v := range []uint64{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
			e.u(v)
		}
		e.i(int64(c.LastCap))
	}
	if e.count(0, p.Securebits == nil) {
		e.u(uint64(*p.Securebits))
	}
	e.bool(p.NoNewPrivileges)
	if s := p.Seccomp; e.count(0, s == nil) {
		e.str(s.Arch)
		e.count(len(s.Filter), s.Filter == nil)
		for _, f := range s.Filter {
			e.b = binary.LittleEndian.AppendUint16(e.b, f.Code)
			e.b = append(e.b, f.Jt, f.Jf)
			e.b = binary.LittleEndian.AppendUint32(e.b, f.K)
		}
		e.u(uint64(s.Flags))
		e.bool(s.Listener)
		e.str(s.ListenerPath)
		e.str(s.ListenerMetadata)
	}
	if l := p.Landlock; e.count(0, l == nil) {
		e.bool(l.Enabled)
		e.strs(l.ReadOnly)
		e.strs(l.ReadExec)
		e.strs(l.ReadWrite)
		for _, ports := range [][]uint16{l.BindTCP, l.ConnectTCP} {
			e.count(len(ports), ports == nil)
			for _, v := range ports {
				e.u(uint64(v))
			}
		}
	}
}

func (d *dec) prepared(p *security.Prepared) {
	if _, ok := d.count(); ok {
		p.Capabilities = &security.CapSets{Bounding: d.u(), Effective: d.u(), Permitted: d.u(), Inheritable: d.u(), Ambient: d.u(), LastCap: int(d.i())}
	}
	if _, ok := d.count(); ok {
		v := uint32(d.u())
		p.Securebits = &v
	}
	p.NoNewPrivileges = d.bool()
	if _, ok := d.count(); ok {
		s := &security.Program{Arch: d.str()}
		if n, ok := d.count(); ok {
			if n*8 > len(d.b) {
				d.fail()
				n = 0
			}
			s.Filter = make([]security.SockFilter, n)
			for i := range s.Filter {
				b := d.b[i*8:]
				s.Filter[i] = security.SockFilter{Code: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
			}
			d.b = d.b[n*8:]
		}
		s.Flags = uint(d.u())
		s.Listener = d.bool()
		s.ListenerPath = d.str()
		s.ListenerMetadata = d.str()
		p.Seccomp = s
	}
	if _, ok := d.count(); ok {
		l := &security.Landlock{Enabled: d.bool(), ReadOnly: d.strs(), ReadExec: d.strs(), ReadWrite: d.strs()}
		for _, ports := range []*[]uint16{&l.BindTCP, &l.ConnectTCP} {
			if n, ok := d.count(); ok {
				*ports = make([]uint16, n)
				for i := range *ports {
					(*ports)[i] = uint16(d.u())
				}
			}
		}
		p.Landlock = l
	}
}

func (e *enc) plan(p *rootfs.Plan) {
	r := &p.Root
	e.str(string(r.Kind))
	e.str(r.Path)
	e.strs(r.Lower)
	e.str(r.Layer)
	e.bool(r.Writable)
	e.i(r.Quota)
	e.i(r.QuotaInodes)
	e.str(r.Store)
	e.str(r.Ref)
	if s := r.Storage; e.count(0, s == nil) {
		e.strs(s.Lower)
		for _, v := range []string{s.Device, s.DeviceFS, s.UpperDir, s.WorkDir, s.UpperDevice} {
			e.str(v)
		}
		e.bool(s.UpperTmpfs)
		e.i(s.UpperSize)
		e.i(s.UpperInodes)
	}
	e.bool(r.IDMap)
	e.bool(p.Readonly)
	e.count(len(p.Mounts), p.Mounts == nil)
	for i := range p.Mounts {
		m := &p.Mounts[i]
		e.str(m.Type)
		e.str(m.Source)
		e.str(m.Destination)
		e.bool(m.ReadOnly)
		e.bool(m.NonRecursive)
		e.i(m.Size)
		e.u(uint64(m.Mode))
		e.str(m.Propagation)
		e.bool(m.NoExec)
		e.bool(m.NoSuid)
		e.bool(m.NoDev)
		e.strs(m.Data)
		e.bool(m.IDMap)
		e.bool(m.CopyUp)
		e.bool(m.Stacked)
	}
	e.strs(p.MaskedPaths)
	e.strs(p.ReadonlyPaths)
	e.count(len(p.Files), p.Files == nil)
	for _, f := range p.Files {
		e.str(f.Path)
		e.bytes(f.Data)
		e.u(uint64(f.Mode))
		e.str(f.Source)
	}
	for _, v := range []bool{p.UserNS, p.NewPID, p.NewNet, p.NewIPC, p.NewCgroup, p.CgroupV2} {
		e.bool(v)
	}
	e.i(int64(p.TTYGid))
	e.i(p.PtyMax)
	e.i(p.ShmSize)
	e.bool(p.Console)
	e.bool(p.Privileged)
	e.count(len(p.CgroupV1), p.CgroupV1 == nil)
	for _, h := range p.CgroupV1 {
		e.str(h.Name)
		e.bool(h.V2)
		e.strs(h.Options)
		e.strs(h.Links)
	}
	e.count(len(p.Devices), p.Devices == nil)
	for _, dv := range p.Devices {
		e.str(dv.Path)
		e.str(dv.Type)
		e.i(dv.Major)
		e.i(dv.Minor)
		e.u(uint64(dv.Mode))
		e.u(uint64(dv.UID))
		e.u(uint64(dv.GID))
	}
	e.str(p.RootPropagation)
	e.bool(p.InheritMountNS)
}

func (d *dec) plan(p *rootfs.Plan) {
	r := &p.Root
	r.Kind = rootfs.Kind(d.str())
	r.Path = d.str()
	r.Lower = d.strs()
	r.Layer = d.str()
	r.Writable = d.bool()
	r.Quota = d.i()
	r.QuotaInodes = d.i()
	r.Store = d.str()
	r.Ref = d.str()
	if _, ok := d.count(); ok {
		r.Storage = &rootfs.Storage{Lower: d.strs(), Device: d.str(), DeviceFS: d.str(), UpperDir: d.str(), WorkDir: d.str(),
			UpperDevice: d.str(), UpperTmpfs: d.bool(), UpperSize: d.i(), UpperInodes: d.i()}
	}
	r.IDMap = d.bool()
	p.Readonly = d.bool()
	if n, ok := d.count(); ok {
		p.Mounts = make([]rootfs.Mount, n)
		for i := range p.Mounts {
			p.Mounts[i] = rootfs.Mount{Type: d.str(), Source: d.str(), Destination: d.str(), ReadOnly: d.bool(),
				NonRecursive: d.bool(), Size: d.i(), Mode: uint32(d.u()), Propagation: d.str(), NoExec: d.bool(),
				NoSuid: d.bool(), NoDev: d.bool(), Data: d.strs(), IDMap: d.bool(), CopyUp: d.bool(), Stacked: d.bool()}
		}
	}
	p.MaskedPaths = d.strs()
	p.ReadonlyPaths = d.strs()
	if n, ok := d.count(); ok {
		p.Files = make([]rootfs.File, n)
		for i := range p.Files {
			p.Files[i] = rootfs.File{Path: d.str(), Data: d.bytes(), Mode: uint32(d.u()), Source: d.str()}
		}
	}
	for _, v := range []*bool{&p.UserNS, &p.NewPID, &p.NewNet, &p.NewIPC, &p.NewCgroup, &p.CgroupV2} {
		*v = d.bool()
	}
	p.TTYGid = int(d.i())
	p.PtyMax = d.i()
	p.ShmSize = d.i()
	p.Console = d.bool()
	p.Privileged = d.bool()
	if n, ok := d.count(); ok {
		p.CgroupV1 = make([]rootfs.CgroupMount, n)
		for i := range p.CgroupV1 {
			p.CgroupV1[i] = rootfs.CgroupMount{Name: d.str(), V2: d.bool(), Options: d.strs(), Links: d.strs()}
		}
	}
	if n, ok := d.count(); ok {
		p.Devices = make([]rootfs.Device, n)
		for i := range p.Devices {
			p.Devices[i] = rootfs.Device{Path: d.str(), Type: d.str(), Major: d.i(), Minor: d.i(),
				Mode: uint32(d.u()), UID: uint32(d.u()), GID: uint32(d.u())}
		}
	}
	p.RootPropagation = d.str()
	p.InheritMountNS = d.bool()
}
