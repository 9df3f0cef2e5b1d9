package limits

import (
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"1024": 1024, "512k": 512 << 10, "512K": 512 << 10, "10M": 10 << 20, "10m": 10 << 20,
		"1G": 1 << 30, "1g": 1 << 30, "2T": 2 << 40, "10MB": 10 << 20, "10MiB": 10 << 20,
		"1.5G": 3 << 29, "0": 0, "7b": 7, "-1": Unlimited, "max": Unlimited, "unlimited": Unlimited,
		" 4k ": 4096, "1.0": 1, ".5k": 512, "0.001k": 1, "2.": 2, "1.25k": 1280,
		"8191.99999999999999999999P": 1<<63 - 1, "8191P": 8191 << 50,
		"9223372036854775807": 1<<63 - 1,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "10X", "1.5", "-5M", "1e3", "0x10", "inf", "9999999P", "1..2k", "10 M", "8192P", "9223372036854775808", "1.1"} {
		if v, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, v)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	if v, err := ParseCPUs("0.5"); err != nil || v != 0.5 {
		t.Errorf("ParseCPUs(0.5) = %v, %v", v, err)
	}
	if v, err := ParseCPUs("2"); err != nil || v != 2 {
		t.Errorf("ParseCPUs(2) = %v, %v", v, err)
	}
	for _, in := range []string{"0", "-1", "x", "NaN", "Inf", ""} {
		if _, err := ParseCPUs(in); err == nil {
			t.Errorf("ParseCPUs(%q) succeeded", in)
		}
	}
}

func TestParseDeviceRate(t *testing.T) {
	d, err := ParseDeviceRate("/dev/vda:10M")
	if err != nil || d != (DeviceRate{Path: "/dev/vda", Rate: 10 << 20}) {
		t.Errorf("got %+v, %v", d, err)
	}
	d, err = ParseDeviceRate("8:16:1k")
	if err != nil || d != (DeviceRate{Major: 8, Minor: 16, Rate: 1024}) {
		t.Errorf("got %+v, %v", d, err)
	}
	d, err = ParseDeviceIOPS("/dev/vda:100")
	if err != nil || d != (DeviceRate{Path: "/dev/vda", Rate: 100}) {
		t.Errorf("got %+v, %v", d, err)
	}
	for _, in := range []string{"/dev/vda", "/dev/vda:", "vda:10M", "8:x:1M", "/dev/vda:-1", ":5"} {
		if _, err := ParseDeviceRate(in); err == nil {
			t.Errorf("ParseDeviceRate(%q) succeeded", in)
		}
	}
	for _, in := range []string{"/dev/vda:10M", "/dev/vda:1.5", "/dev/vda"} {
		if _, err := ParseDeviceIOPS(in); err == nil {
			t.Errorf("ParseDeviceIOPS(%q) succeeded", in)
		}
	}
}

func TestParseRlimit(t *testing.T) {
	cases := map[string]Rlimit{
		"nofile=1024:2048":            {"RLIMIT_NOFILE", 1024, 2048},
		"nofile=1024":                 {"RLIMIT_NOFILE", 1024, 1024},
		"RLIMIT_CORE=0":               {"RLIMIT_CORE", 0, 0},
		"rlimit_stack=8192:unlimited": {"RLIMIT_STACK", 8192, RlimInfinity},
		"NPROC=unlimited":             {"RLIMIT_NPROC", RlimInfinity, RlimInfinity},
		"memlock=-1:-1":               {"RLIMIT_MEMLOCK", RlimInfinity, RlimInfinity},
	}
	for in, want := range cases {
		got, err := ParseRlimit(in)
		if err != nil || got != want {
			t.Errorf("ParseRlimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ParseRlimit(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q via %q = %+v, %v", in, got.String(), back, err)
		}
	}
	for _, name := range RlimitNames() {
		if _, err := ParseRlimit(strings.ToLower(strings.TrimPrefix(name, "RLIMIT_")) + "=1"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(RlimitNames()) != 16 {
		t.Errorf("RlimitNames has %d names, want all 16 Linux rlimits", len(RlimitNames()))
	}
	for _, in := range []string{"nofile", "nofile=", "bogus=1", "nofile=2048:1024", "nofile=a:b", "nofile=1:2:3"} {
		_, err := ParseRlimit(in)
		if err == nil {
			t.Errorf("ParseRlimit(%q) succeeded", in)
		}
	}
	_, err := ParseRlimit("nofile=2048:1024")
	if err == nil || !strings.Contains(err.Error(), "above hard") {
		t.Errorf("soft > hard error = %v", err)
	}
}

func TestRlimitApply(t *testing.T) {
	before, err := Current("core")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := before.Apply(); err != nil {
			t.Errorf("restore: %v", err)
		}
	})
	want := Rlimit{Type: "RLIMIT_CORE", Soft: 0, Hard: before.Hard}
	if err := want.Apply(); err != nil {
		t.Fatal(err)
	}
	var got unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &got); err != nil {
		t.Fatal(err)
	}
	if got.Cur != 0 || got.Max != before.Hard {
		t.Errorf("after Apply: %+v, want cur 0 max %d", got, before.Hard)
	}
	if err := (Rlimit{Type: "RLIMIT_CORE", Soft: 2, Hard: 1}).Apply(); err == nil {
		t.Error("Apply with soft > hard succeeded")
	}
	if err := (Rlimit{Type: "nofile", Soft: 1, Hard: 1}).Apply(); err == nil {
		t.Error("Apply with a non-canonical type succeeded")
	}
	if d := DefaultRlimits(); len(d) == 0 || d[0].Validate() != nil {
		t.Errorf("DefaultRlimits() = %+v", d)
	}
}

func TestValidate(t *testing.T) {
	var nilRes *Resources
	if err := nilRes.Validate(); err != nil {
		t.Errorf("nil: %v", err)
	}
	ok := &Resources{
		Memory:  &Memory{Limit: Ptr[int64](64 << 20), Swap: Ptr[int64](128 << 20), Reservation: Ptr[int64](32 << 20)},
		CPU:     &CPU{CPUs: Ptr(0.5), Period: Ptr[uint64](50000), Weight: Ptr[uint64](200), Cpuset: "0-1", Mems: "0"},
		Pids:    &Pids{Max: Ptr[int64](Unlimited)},
		IO:      &IO{Weight: Ptr[uint16](500), ReadBps: []DeviceRate{{Major: 8, Minor: 0, Rate: 1 << 20}}},
		Devices: []DeviceRule{{Type: "a", Major: Wildcard, Minor: Wildcard, Access: "rwm"}, {Allow: true, Type: "c", Major: 1, Minor: 3, Access: "rw"}},
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid resources: %v", err)
	}
	bad := []struct {
		r    Resources
		want string
	}{
		{Resources{Memory: &Memory{Limit: Ptr[int64](0)}}, "memory.limit: must be > 0"},
		{Resources{Memory: &Memory{Limit: Ptr[int64](10), Swap: Ptr[int64](5)}}, "memory.swap: 5 is less than memory.limit"},
		{Resources{Memory: &Memory{Swap: Ptr[int64](5)}}, "memory.swap: needs memory.limit"},
		{Resources{Memory: &Memory{Limit: Ptr[int64](10), Reservation: Ptr[int64](20)}}, "memory.reservation: 20 is more than"},
		{Resources{CPU: &CPU{CPUs: Ptr(0.0)}}, "cpu.cpus: 0 is not a valid quota"},
		{Resources{CPU: &CPU{CPUs: Ptr(-3.0)}}, "cpu.cpus: must be > 0"},
		{Resources{CPU: &CPU{CPUs: Ptr(0.001)}}, "cpu.cpus: 0.001 cores over a 100000us period"},
		{Resources{CPU: &CPU{Period: Ptr[uint64](10)}}, "cpu.period: must be 1000..1000000"},
		{Resources{CPU: &CPU{Weight: Ptr[uint64](0)}}, "cpu.weight: must be 1..10000"},
		{Resources{CPU: &CPU{Cpuset: "0-"}}, "cpu.cpuset:"},
		{Resources{CPU: &CPU{Mems: "3-1"}}, "cpu.mems:"},
		{Resources{Pids: &Pids{Max: Ptr[int64](0)}}, "pids.max: must be > 0"},
		{Resources{IO: &IO{Weight: Ptr[uint16](5)}}, "io.weight: must be 10..1000"},
		{Resources{IO: &IO{WriteBps: []DeviceRate{{Rate: 1}}}}, "io.writeBps[0]: needs a device path"},
		{Resources{IO: &IO{ReadIOPS: []DeviceRate{{Path: "/dev/null", Rate: 1}}}}, "io.readIOPS[0]: /dev/null is not a block device"},
		{Resources{IO: &IO{WriteIOPS: []DeviceRate{{Path: "/nonexistent/dev", Rate: 1}}}}, "io.writeIOPS[0]: stat /nonexistent/dev"},
		{Resources{HugeTLB: []HugeTLB{{PageSize: "2M", Limit: 1}}}, "hugetlb[0].pageSize:"},
		{Resources{HugeTLB: []HugeTLB{{PageSize: "3MB", Limit: 1}}}, "hugetlb[0].pageSize: 3MB pages are not supported"},
		{Resources{Devices: []DeviceRule{{Type: "x", Access: "r"}}}, "devices[0]: type must be"},
		{Resources{Devices: []DeviceRule{{Type: "c", Access: "rr"}}}, "devices[0]: access \"rr\""},
		{Resources{Devices: []DeviceRule{{Type: "c", Access: ""}}}, "devices[0]: access must not be empty"},
		{Resources{Devices: []DeviceRule{{Type: "c", Major: -2, Access: "r"}}}, "devices[0]: major and minor"},
	}
	for _, c := range bad {
		err := c.r.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v; want an error containing %q", c.r, err, c.want)
		}
	}
	// Several bad fields are all reported.
	two := Resources{Memory: &Memory{Limit: Ptr[int64](0)}, Pids: &Pids{Max: Ptr[int64](0)}}
	if err := two.Validate(); err == nil || !strings.Contains(err.Error(), "memory.limit") || !strings.Contains(err.Error(), "pids.max") {
		t.Errorf("two errors: %v", err)
	}
}

func TestDeviceRateResolvesBlockDevice(t *testing.T) {
	// Any block device of this machine will do: /sys/dev/block lists them
	// by major:minor, and /dev has their nodes.
	var st unix.Stat_t
	found := ""
	for _, p := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0", "/dev/xvda"} {
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			found = p
			break
		}
	}
	if found == "" {
		t.Fatal("no block device node found in /dev")
	}
	maj, min, err := DeviceRate{Path: found, Rate: 1}.Device()
	if err != nil || maj != int64(unix.Major(st.Rdev)) || min != int64(unix.Minor(st.Rdev)) {
		t.Errorf("Device(%s) = %d:%d, %v", found, maj, min, err)
	}
	maj, min, err = DeviceRate{Path: found, Major: 7, Minor: 9}.Device()
	if err != nil || maj != 7 || min != 9 {
		t.Errorf("explicit numbers: %d:%d, %v", maj, min, err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := Resources{
		Memory:  &Memory{Limit: Ptr[int64](1 << 20)},
		CPU:     &CPU{CPUs: Ptr(1.5), Cpuset: "0"},
		HugeTLB: []HugeTLB{{PageSize: "2MB", Limit: 4 << 20}},
		Devices: []DeviceRule{{Allow: true, Type: "c", Major: 1, Minor: Wildcard, Access: "rw"}},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Resources
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if *back.Memory.Limit != 1<<20 || *back.CPU.CPUs != 1.5 || back.CPU.Cpuset != "0" || back.HugeTLB[0] != r.HugeTLB[0] || back.Devices[0] != r.Devices[0] {
		t.Errorf("round trip: %s -> %+v", b, back)
	}
	if s := r.Devices[0].String(); s != "c 1:* rw" {
		t.Errorf("DeviceRule.String() = %q", s)
	}
	if HugePageSizeName(2<<20) != "2MB" || HugePageSizeName(1<<30) != "1GB" || HugePageSizeName(64<<10) != "64KB" {
		t.Error("HugePageSizeName")
	}
}

func TestCheckContainerMinimumMemory(t *testing.T) {
	for _, v := range []int64{1, 4096, MinContainerMemory - 1} {
		err := (&Resources{Memory: &Memory{Limit: Ptr(v)}}).CheckContainer()
		if err == nil || !strings.Contains(err.Error(), "memory.limit") || !strings.Contains(err.Error(), "6291456") {
			t.Errorf("memory limit %d: %v, want an error naming memory.limit and the minimum", v, err)
		}
	}
	err := (&Resources{Memory: &Memory{Limit: Ptr[int64](64 << 20), Swap: Ptr[int64](1 << 20)}}).CheckContainer()
	if err == nil || !strings.Contains(err.Error(), "memory.swap") {
		t.Errorf("swap of 1 MiB: %v", err)
	}
	for _, r := range []*Resources{nil, {}, {Memory: &Memory{Limit: Ptr[int64](MinContainerMemory)}}, {Memory: &Memory{Limit: Ptr(Unlimited), Swap: Ptr(Unlimited)}}} {
		if err := r.CheckContainer(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}
