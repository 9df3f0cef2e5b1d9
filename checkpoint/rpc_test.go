package checkpoint

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
)

// The hand-written RPC codec must say exactly what go-criu's generated
// types say: requests are decoded with them, responses encoded with them.

func TestRPCRequestMatchesGenerated(t *testing.T) {
	mode := cgStrict
	lock := lockNftables
	ours := &criuReq{Type: reqRestore, NotifySuccess: ptr(false), Opts: &criuOpts{
		ImagesDirFd: ptr[int32](7), Pid: ptr[int32](4242), LogLevel: ptr[int32](4), WorkDirFd: ptr[int32](-1),
		LeaveRunning: ptr(true), ExtUnixSk: ptr(false), TcpEstablished: ptr(true), ShellJob: ptr(true), FileLocks: ptr(false),
		NotifyScripts: ptr(true), TrackMem: ptr(true), AutoDedup: ptr(false), LinkRemap: ptr(true), ManageCgroups: ptr(true),
		RstSibling: ptr(true), LogFile: ptr("restore.log"), Root: ptr("/run/x/root"), ParentImg: ptr("../pre1"),
		FreezeCgroup:      ptr("/sys/fs/cgroup/freezer/v"),
		CgRoot:            []cgroupRoot{{Path: "/a"}, {Ctrl: ptr("memory"), Path: "/b"}},
		InheritFd:         []inheritFd{{Key: "file[2a:1]", Fd: 4}, {Key: "extRootNetNS", Fd: 5}},
		ManageCgroupsMode: &mode, External: []string{"unix[77]", "mnt[/x]:y"}, NetworkLock: &lock,
	}}
	want := &rpc.CriuReq{Type: rpc.CriuReqType_RESTORE.Enum(), NotifySuccess: proto.Bool(false), Opts: &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(7), Pid: proto.Int32(4242), LogLevel: proto.Int32(4), WorkDirFd: proto.Int32(-1),
		LeaveRunning: proto.Bool(true), ExtUnixSk: proto.Bool(false), TcpEstablished: proto.Bool(true), ShellJob: proto.Bool(true), FileLocks: proto.Bool(false),
		NotifyScripts: proto.Bool(true), TrackMem: proto.Bool(true), AutoDedup: proto.Bool(false), LinkRemap: proto.Bool(true), ManageCgroups: proto.Bool(true),
		RstSibling: proto.Bool(true), LogFile: proto.String("restore.log"), Root: proto.String("/run/x/root"), ParentImg: proto.String("../pre1"),
		FreezeCgroup:      proto.String("/sys/fs/cgroup/freezer/v"),
		CgRoot:            []*rpc.CgroupRoot{{Path: proto.String("/a")}, {Ctrl: proto.String("memory"), Path: proto.String("/b")}},
		InheritFd:         []*rpc.InheritFd{{Key: proto.String("file[2a:1]"), Fd: proto.Int32(4)}, {Key: proto.String("extRootNetNS"), Fd: proto.Int32(5)}},
		ManageCgroupsMode: rpc.CriuCgMode_STRICT.Enum(), External: []string{"unix[77]", "mnt[/x]:y"}, NetworkLock: rpc.CriuNetworkLockMethod_NFTABLES.Enum(),
	}}
	got := &rpc.CriuReq{}
	if err := proto.Unmarshal(ours.marshal(), got); err != nil {
		t.Fatalf("generated decoder rejects our request: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("request decodes as\n%v\nwant\n%v", got, want)
	}

	// The small requests: version, feature check, notify ack, dump types.
	for _, c := range []struct {
		ours *criuReq
		want *rpc.CriuReq
	}{
		{&criuReq{Type: reqVersion}, &rpc.CriuReq{Type: rpc.CriuReqType_VERSION.Enum()}},
		{&criuReq{Type: reqFeatureCheck, FeatureMemTrack: ptr(true)}, &rpc.CriuReq{Type: rpc.CriuReqType_FEATURE_CHECK.Enum(), Features: &rpc.CriuFeatures{MemTrack: proto.Bool(true)}}},
		{&criuReq{Type: reqNotify, NotifySuccess: ptr(true)}, &rpc.CriuReq{Type: rpc.CriuReqType_NOTIFY.Enum(), NotifySuccess: proto.Bool(true)}},
		{&criuReq{Type: reqDump, Opts: &criuOpts{ImagesDirFd: ptr[int32](3), ManageCgroupsMode: ptr(cgIgnore)}}, &rpc.CriuReq{Type: rpc.CriuReqType_DUMP.Enum(), Opts: &rpc.CriuOpts{ImagesDirFd: proto.Int32(3), ManageCgroupsMode: rpc.CriuCgMode_IGNORE.Enum()}}},
		{&criuReq{Type: reqSinglePreDump, Opts: &criuOpts{ImagesDirFd: ptr[int32](3), NetworkLock: ptr(lockSkip), ManageCgroupsMode: ptr(cgSoft)}}, &rpc.CriuReq{Type: rpc.CriuReqType_SINGLE_PRE_DUMP.Enum(), Opts: &rpc.CriuOpts{ImagesDirFd: proto.Int32(3), NetworkLock: rpc.CriuNetworkLockMethod_SKIP.Enum(), ManageCgroupsMode: rpc.CriuCgMode_SOFT.Enum()}}},
	} {
		got := &rpc.CriuReq{}
		if err := proto.Unmarshal(c.ours.marshal(), got); err != nil || !proto.Equal(got, c.want) {
			t.Errorf("%v: decodes as %v (%v), want %v", c.ours.Type, got, err, c.want)
		}
	}
}

func TestRPCResponseMatchesGenerated(t *testing.T) {
	enc := func(m *rpc.CriuResp) *criuResp {
		t.Helper()
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		r, err := unmarshalResp(b)
		if err != nil {
			t.Fatalf("our decoder rejects %v: %v", m, err)
		}
		return r
	}
	r := enc(&rpc.CriuResp{Type: rpc.CriuReqType_VERSION.Enum(), Success: proto.Bool(true),
		Version: &rpc.CriuVersion{MajorNumber: proto.Int32(4), MinorNumber: proto.Int32(2), Sublevel: proto.Int32(1), Gitid: proto.String("v4.2.1")}})
	if r.Type != reqVersion || !r.Success || r.Version == nil || *r.Version != (Version{4, 2, 1}) {
		t.Errorf("version response: %+v %+v", r, r.Version)
	}
	r = enc(&rpc.CriuResp{Type: rpc.CriuReqType_RESTORE.Enum(), Success: proto.Bool(true), Restore: &rpc.CriuRestoreResp{Pid: proto.Int32(31337)},
		Dump: &rpc.CriuDumpResp{Restored: proto.Bool(true)}, Status: proto.Int32(3)})
	if r.Type != reqRestore || !r.Success || r.RestorePid != 31337 || r.Notify != nil || r.Version != nil {
		t.Errorf("restore response: %+v", r)
	}
	r = enc(&rpc.CriuResp{Type: rpc.CriuReqType_DUMP.Enum(), Success: proto.Bool(false), CrErrno: proto.Int32(13), CrErrmsg: proto.String("Permission denied")})
	if r.Success || r.CrErrno != 13 || r.CrErrmsg != "Permission denied" {
		t.Errorf("failure response: %+v", r)
	}
	r = enc(&rpc.CriuResp{Type: rpc.CriuReqType_NOTIFY.Enum(), Success: proto.Bool(true), Notify: &rpc.CriuNotify{Script: proto.String("network-lock"), Pid: proto.Int32(77)}})
	if r.Type != reqNotify || r.Notify == nil || r.Notify.Script != "network-lock" || r.Notify.Pid != 77 {
		t.Errorf("notify response: %+v %+v", r, r.Notify)
	}
	r = enc(&rpc.CriuResp{Type: rpc.CriuReqType_FEATURE_CHECK.Enum(), Success: proto.Bool(true), Features: &rpc.CriuFeatures{MemTrack: proto.Bool(true), LazyPages: proto.Bool(false)}})
	if !r.MemTrack {
		t.Errorf("feature response: %+v", r)
	}
	r = enc(&rpc.CriuResp{Type: rpc.CriuReqType_FEATURE_CHECK.Enum(), Success: proto.Bool(true), Features: &rpc.CriuFeatures{MemTrack: proto.Bool(false)}})
	if r.MemTrack {
		t.Errorf("feature response without memory tracking: %+v", r)
	}
	// Truncated input is refused, not half-read.
	b, _ := proto.Marshal(&rpc.CriuResp{Type: rpc.CriuReqType_DUMP.Enum(), Success: proto.Bool(false), CrErrmsg: proto.String("a long message")})
	if _, err := unmarshalResp(b[:len(b)-3]); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("truncated response: err %v, want malformed", err)
	}
}
