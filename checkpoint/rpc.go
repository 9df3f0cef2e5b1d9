package checkpoint

import "errors"

// CRIU's RPC messages (criu/images/rpc.proto), the part this package
// sends and reads, encoded and decoded with wire.go. The generated
// protobuf types would work as well, but registering them costs every
// program that links vessel time at start (and a container's init is such
// a program); the images codec (images.go) works the same way.
//
// Optional fields are pointers: nil is absent, as in proto2.

type reqType int32

// criu_req_type values.
const (
	reqDump    reqType = 1
	reqRestore reqType = 2
	// reqSinglePreDump is one pre-dump per connection: criu answers and
	// is done. (PRE_DUMP, 4, starts a loop of pre-dumps that a dump on
	// the same connection must end: criu exits 255 when the connection
	// closes after a pre-dump that succeeded.)
	reqSinglePreDump reqType = 13
	reqNotify        reqType = 6
	reqFeatureCheck  reqType = 9
	reqVersion       reqType = 10
)

// criu_cg_mode values.
type cgMode int32

const (
	cgIgnore cgMode = 0
	cgProps  cgMode = 2
	cgSoft   cgMode = 3
	cgFull   cgMode = 4
	cgStrict cgMode = 5
)

// criu_network_lock_method values.
type lockMethod int32

const (
	lockIptables lockMethod = 1
	lockNftables lockMethod = 2
	lockSkip     lockMethod = 3
)

type cgroupRoot struct {
	Ctrl *string
	Path string
}

type inheritFd struct {
	Key string
	Fd  int32
}

// criuOpts is criu_opts.
type criuOpts struct {
	ImagesDirFd, Pid, LogLevel, WorkDirFd                        *int32
	LeaveRunning, ExtUnixSk, TcpEstablished, ShellJob, FileLocks *bool
	NotifyScripts, TrackMem, AutoDedup, LinkRemap, ManageCgroups *bool
	RstSibling, OrphanPtsMaster                                  *bool
	LogFile, Root, ParentImg, FreezeCgroup, ImagesDir            *string
	CgRoot                                                       []cgroupRoot
	InheritFd                                                    []inheritFd
	ManageCgroupsMode                                            *cgMode
	External                                                     []string
	NetworkLock                                                  *lockMethod
	JoinNs                                                       []joinNs
	// PageServerFd is criu_page_server_info.fd: a connected socket of
	// criu's (swrk mode) to send the pages to.
	PageServerFd *int32
}

// joinNs is join_namespace.
type joinNs struct {
	Ns, File string
}

// criuReq is criu_req.
type criuReq struct {
	Type          reqType
	Opts          *criuOpts
	NotifySuccess *bool
	// Features asks about memory tracking (criu_features.mem_track).
	FeatureMemTrack *bool
}

// criuResp is what this package reads of criu_resp.
type criuResp struct {
	Type     reqType
	Success  bool
	CrErrno  int32
	CrErrmsg string
	// RestorePid is criu_restore_resp.pid.
	RestorePid int32
	// Notify is set for a notification (criu_notify).
	Notify *criuNotify
	// MemTrack is criu_features.mem_track of a feature check.
	MemTrack bool
	// Version is set when criu answered a version request.
	Version *Version
}

type criuNotify struct {
	Script string
	Pid    int32
}

func ptr[T any](v T) *T { return &v }

func appendInt32(b []byte, num number, v *int32) []byte {
	if v == nil {
		return b
	}
	// int32 fields carry negative values sign-extended to 64 bits.
	return appendVarintField(b, num, uint64(int64(*v)))
}

func appendBool(b []byte, num number, v *bool) []byte {
	if v == nil {
		return b
	}
	return appendVarintField(b, num, encodeBool(*v))
}

func appendString(b []byte, num number, v *string) []byte {
	if v == nil {
		return b
	}
	return appendBytesField(b, num, []byte(*v))
}

func (o *criuOpts) marshal() []byte {
	var b []byte
	b = appendInt32(b, 1, o.ImagesDirFd)
	b = appendInt32(b, 2, o.Pid)
	b = appendBool(b, 3, o.LeaveRunning)
	b = appendBool(b, 4, o.ExtUnixSk)
	b = appendBool(b, 5, o.TcpEstablished)
	b = appendBool(b, 7, o.ShellJob)
	b = appendBool(b, 8, o.FileLocks)
	b = appendInt32(b, 9, o.LogLevel)
	b = appendString(b, 10, o.LogFile)
	if o.PageServerFd != nil {
		b = appendBytesField(b, 11, appendInt32(nil, 4, o.PageServerFd))
	}
	b = appendBool(b, 12, o.NotifyScripts)
	b = appendString(b, 13, o.Root)
	b = appendString(b, 14, o.ParentImg)
	b = appendBool(b, 15, o.TrackMem)
	b = appendBool(b, 16, o.AutoDedup)
	b = appendInt32(b, 17, o.WorkDirFd)
	b = appendBool(b, 18, o.LinkRemap)
	b = appendBool(b, 24, o.ManageCgroups)
	for _, r := range o.CgRoot {
		m := appendString(nil, 1, r.Ctrl)
		m = appendString(m, 2, &r.Path)
		b = appendBytesField(b, 25, m)
	}
	b = appendBool(b, 26, o.RstSibling)
	for _, in := range o.InheritFd {
		m := appendString(nil, 1, &in.Key)
		m = appendInt32(m, 2, &in.Fd)
		b = appendBytesField(b, 27, m)
	}
	if o.ManageCgroupsMode != nil {
		b = appendInt32(b, 34, ptr(int32(*o.ManageCgroupsMode)))
	}
	for i := range o.External {
		b = appendString(b, 37, &o.External[i])
	}
	for _, j := range o.JoinNs {
		m := appendString(nil, 1, &j.Ns)
		m = appendString(m, 2, &j.File)
		b = appendBytesField(b, 39, m)
	}
	b = appendString(b, 44, o.FreezeCgroup)
	b = appendBool(b, 50, o.OrphanPtsMaster)
	b = appendString(b, 68, o.ImagesDir)
	if o.NetworkLock != nil {
		b = appendInt32(b, 64, ptr(int32(*o.NetworkLock)))
	}
	return b
}

func (r *criuReq) marshal() []byte {
	b := appendInt32(nil, 1, ptr(int32(r.Type)))
	if r.Opts != nil {
		b = appendBytesField(b, 2, r.Opts.marshal())
	}
	b = appendBool(b, 3, r.NotifySuccess)
	if r.FeatureMemTrack != nil {
		b = appendBytesField(b, 5, appendBool(nil, 1, r.FeatureMemTrack))
	}
	return b
}

// unmarshalResp decodes a criu_resp; fields it does not use are skipped.
func unmarshalResp(b []byte) (*criuResp, error) {
	r := &criuResp{}
	u := func(num number, m []byte) int32 {
		v, _ := varintField(m, num)
		return int32(v)
	}
	ok := eachField(b, func(num number, typ wireType, val, _ []byte) {
		var m []byte
		if typ == bytesType {
			m, _ = consumeBytes(val)
		}
		v, _ := consumeVarint(val)
		switch num {
		case 1:
			r.Type = reqType(v)
		case 2:
			r.Success = v != 0
		case 7:
			r.CrErrno = int32(v)
		case 9:
			r.CrErrmsg = string(m)
		case 4: // criu_restore_resp
			r.RestorePid = u(1, m)
		case 5: // criu_notify
			s, _ := bytesField(m, 1)
			r.Notify = &criuNotify{Script: string(s), Pid: u(2, m)}
		case 8: // criu_features
			r.MemTrack = u(1, m) != 0
		case 10: // criu_version
			r.Version = &Version{Major: int(u(1, m)), Minor: int(u(2, m)), Sublevel: int(u(4, m))}
		}
	})
	if !ok {
		return nil, errors.New("criu response: malformed protobuf")
	}
	return r, nil
}
