package cgroups

import (
	"strings"
	"testing"
	"time"

	"github.com/openvessel/vessel/limits"
)

const hybridMountinfo = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const hybridSelf = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/2cdc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`

const v1Mountinfo = `25 21 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
33 25 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
`

const v1Self = `5:pids:/user.slice/user-0.slice
4:net_cls,net_prio:/
3:memory:/user.slice
2:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-0.slice/session-1.scope
`

// A container whose cgroup2 mount shows only its own sub-cgroup.
const v2NestedMountinfo = `1 0 0:1 / / rw - overlay overlay rw
40 1 0:37 /kubepods/pod1 /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw
`

func TestDiscoverAndPlace(t *testing.T) {
	sys, err := discover(strings.NewReader(hybridMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if sys.layout != Hybrid || len(sys.v1) != 9 || sys.unified == nil || sys.unified.mountpoint != "/sys/fs/cgroup/unified" {
		t.Fatalf("hybrid: %+v", sys)
	}
	self, err := parseProcCgroups(strings.NewReader(hybridSelf))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := placement(sys, self, "", "vessel/c1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"memory":       "/sys/fs/cgroup/memory/process_api/2cdc/vessel/c1",
		"cpu":          "/sys/fs/cgroup/cpu/vessel/c1",
		"name=systemd": "/sys/fs/cgroup/systemd/vessel/c1",
		unifiedKey:     "/sys/fs/cgroup/unified/vessel/c1",
	}
	for k, v := range want {
		if dirs[k] != v {
			t.Errorf("hybrid %s: %q, want %q", k, dirs[k], v)
		}
	}
	if len(dirs) != 10 {
		t.Errorf("hybrid: %d dirs, want 10: %v", len(dirs), dirs)
	}
	dirs, _ = placement(sys, self, "/custom", "c1")
	if dirs["memory"] != "/sys/fs/cgroup/memory/custom/c1" || dirs[unifiedKey] != "/sys/fs/cgroup/unified/custom/c1" {
		t.Errorf("explicit parent: %v", dirs)
	}

	sys, err = discover(strings.NewReader(v1Mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if sys.layout != V1 || sys.unified != nil {
		t.Fatalf("v1: %+v", sys)
	}
	if h, ok := sys.v1For("cpuacct"); !ok || h.key != "cpu,cpuacct" || h.mountpoint != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Errorf("v1 cpuacct: %+v", h)
	}
	self, _ = parseProcCgroups(strings.NewReader(v1Self))
	dirs, err = placement(sys, self, "", "job")
	if err != nil {
		t.Fatal(err)
	}
	if dirs["cpu,cpuacct"] != "/sys/fs/cgroup/cpu,cpuacct/user.slice/job" || dirs["name=systemd"] != "/sys/fs/cgroup/systemd/user.slice/user-0.slice/session-1.scope/job" || len(dirs) != 4 {
		t.Errorf("v1: %v", dirs)
	}

	sys, err = discover(strings.NewReader(v2NestedMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if sys.layout != V2 {
		t.Fatalf("v2: %+v", sys)
	}
	dirs, err = placement(sys, map[string]string{unifiedKey: "/kubepods/pod1/ctr"}, "", "job")
	if err != nil || dirs[unifiedKey] != "/sys/fs/cgroup/ctr/job" || len(dirs) != 1 {
		t.Errorf("v2 nested: %v, %v", dirs, err)
	}
	if _, err := placement(sys, map[string]string{unifiedKey: "/elsewhere"}, "", "job"); err == nil {
		t.Error("v2: a cgroup outside the mount was accepted")
	}
	if _, err := discover(strings.NewReader("1 0 0:1 / / rw - ext4 /dev/vda rw\n")); err == nil {
		t.Error("no cgroup mounts: no error")
	}
	if got := unescapeMount(`/a\040b`); got != "/a b" {
		t.Errorf("unescape: %q", got)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"vessel/job-42", "a", "vessel-test/x.y"} {
		if err := checkName("name", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", "./a", "cgroup.procs", "a:b", "x\ny"} {
		err := checkName("name", bad)
		if err == nil || !strings.Contains(err.Error(), "name") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := checkParent("relative"); err == nil {
		t.Error("relative parent accepted")
	}
	if err := checkParent("/a/../b"); err == nil {
		t.Error("parent with .. accepted")
	}
	if _, err := New(Options{Name: "../x"}); err == nil || !strings.Contains(err.Error(), `".."`) {
		t.Errorf("New with ..: %v", err)
	}
	if _, err := New(Options{Name: "x", Resources: &limits.Resources{Pids: &limits.Pids{Max: limits.Ptr[int64](0)}}}); err == nil || !strings.Contains(err.Error(), "pids.max") {
		t.Errorf("New with bad resources: %v", err)
	}
}

func TestWrites(t *testing.T) {
	res := &limits.Resources{
		Memory:  &limits.Memory{Limit: limits.Ptr[int64](64 << 20), Swap: limits.Ptr[int64](96 << 20), Reservation: limits.Ptr[int64](limits.Unlimited)},
		CPU:     &limits.CPU{CPUs: limits.Ptr(0.5), Weight: limits.Ptr[uint64](100), Cpuset: "0"},
		Pids:    &limits.Pids{Max: limits.Ptr[int64](limits.Unlimited)},
		IO:      &limits.IO{Weight: limits.Ptr[uint16](200), ReadBps: []limits.DeviceRate{{Major: 8, Minor: 0, Rate: 1 << 20}}, WriteIOPS: []limits.DeviceRate{{Major: 8, Minor: 0}}},
		HugeTLB: []limits.HugeTLB{{PageSize: "2MB", Limit: 4 << 20}},
	}
	w1, err := v1Writes(res)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := v2Writes(res)
	if err != nil {
		t.Fatal(err)
	}
	render := func(ws []write) string {
		var b strings.Builder
		for _, w := range ws {
			b.WriteString(w.ctrl + " " + w.file + "=" + w.value + "\n")
		}
		return b.String()
	}
	wantV1 := `cpuset cpuset.cpus=0
cpu cpu.cfs_period_us=100000
cpu cpu.cfs_quota_us=50000
cpu cpu.shares=1024
memory memory.limit_in_bytes=67108864
memory memory.memsw.limit_in_bytes=100663296
memory memory.soft_limit_in_bytes=-1
pids pids.max=max
io blkio.weight=200
io blkio.throttle.read_bps_device=8:0 1048576
io blkio.throttle.write_iops_device=8:0 0
hugetlb hugetlb.2MB.limit_in_bytes=4194304
`
	wantV2 := `cpuset cpuset.cpus=0
cpu cpu.max=50000 100000
cpu cpu.weight=100
memory memory.max=67108864
memory memory.swap.max=33554432
memory memory.low=0
pids pids.max=max
io io.weight=default 200
io io.max=8:0 rbps=1048576
io io.max=8:0 wiops=max
hugetlb hugetlb.2MB.max=4194304
`
	if got := render(w1); got != wantV1 {
		t.Errorf("v1 writes:\n%s\nwant:\n%s", got, wantV1)
	}
	if got := render(w2); got != wantV2 {
		t.Errorf("v2 writes:\n%s\nwant:\n%s", got, wantV2)
	}
	if c := controllersOf(w2); strings.Join(c, ",") != "cpuset,cpu,memory,pids,io,hugetlb" {
		t.Errorf("controllers: %v", c)
	}
	// Unlimited CPU and weight conversions at the ends of the range.
	if q, p, ok := cpuQuota(&limits.CPU{CPUs: limits.Ptr(-1.0)}); q != -1 || p != 100000 || !ok {
		t.Errorf("unlimited quota: %d %d %v", q, p, ok)
	}
	if sharesFromWeight(1) != 10 || sharesFromWeight(10000) != 102400 || sharesFromWeight(100) != 1024 {
		t.Errorf("shares: %d %d", sharesFromWeight(1), sharesFromWeight(10000))
	}
	w2, _ = v2Writes(&limits.Resources{Memory: &limits.Memory{Limit: limits.Ptr[int64](10), Swap: limits.Ptr[int64](limits.Unlimited)}, CPU: &limits.CPU{CPUs: limits.Ptr(-1.0)}})
	if got := render(w2); got != "cpu cpu.max=max 100000\nmemory memory.max=10\nmemory memory.swap.max=max\n" {
		t.Errorf("unlimited v2 writes: %q", got)
	}
}

func TestParsePressure(t *testing.T) {
	p := parsePressure("some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\nfull avg10=0.10 avg60=0.00 avg300=0.00 total=10\n")
	if p == nil || p.Some.Avg10 != 1.5 || p.Some.Avg60 != 0.25 || p.Some.Total != 1234*time.Microsecond || p.Full.Avg10 != 0.1 || p.Full.Total != 10*time.Microsecond {
		t.Errorf("%+v", p)
	}
	if parsePressure("") != nil {
		t.Error("empty pressure parsed")
	}
}
