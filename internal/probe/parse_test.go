package probe

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseIDMap(t *testing.T) {
	got, err := ParseIDMap("         0     100000      65536\n     65536          1          1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []IDMapEntry{{0, 100000, 65536}, {65536, 1, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, err := ParseIDMap(""); err != nil || len(got) != 0 {
		t.Errorf("empty map: got %+v, %v; want no entries", got, err)
	}
	if got, err := ParseIDMap("0 0 4294967295\n"); err != nil || got[0].Count != 4294967295 {
		t.Errorf("full map: got %+v, %v", got, err)
	}
	for _, bad := range []string{"0 0\n", "0 x 1\n", "0 0 4294967296\n", "-1 0 1\n"} {
		if _, err := ParseIDMap(bad); err == nil {
			t.Errorf("ParseIDMap(%q): no error", bad)
		}
	}
}

func TestParseStatusAndCaps(t *testing.T) {
	st := ParseStatus("Name:\tprobe\nUmask:\t0027\nCapEff:\t0000000000200000\nNSpid:\t812\t1\n")
	if st["Umask"] != "0027" || st["Name"] != "probe" || st["NSpid"] != "812\t1" {
		t.Errorf("ParseStatus: %q", st)
	}
	cs, err := ParseCapSet(st["CapEff"])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cs.Names, []string{"CAP_SYS_ADMIN"}) || cs.Hex != "0000000000200000" {
		t.Errorf("ParseCapSet: %+v", cs)
	}
	for _, name := range []string{"CAP_SYS_ADMIN", "sys_admin", "SYS_ADMIN", "21"} {
		if !cs.Has(name) {
			t.Errorf("Has(%q) = false", name)
		}
	}
	if cs.Has("CAP_CHOWN") || cs.Has("CAP_NO_SUCH") {
		t.Error("Has reports a capability that is not in the set")
	}
	all, err := ParseCapSet("000001ffffffffff")
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Names) != 41 || all.Names[0] != "CAP_CHOWN" || all.Names[40] != "CAP_CHECKPOINT_RESTORE" {
		t.Errorf("full set: %d names %v", len(all.Names), all.Names)
	}
	if got := CapNames(1 << 45); !reflect.DeepEqual(got, []string{"CAP_45"}) {
		t.Errorf("unknown bit: %v", got)
	}
	if got := CapNames(0); got == nil || len(got) != 0 {
		t.Errorf("empty mask: %#v, want an empty non-nil list", got)
	}
	if _, err := ParseCapSet("zz"); err == nil {
		t.Error("ParseCapSet(zz): no error")
	}
	if bit, ok := CapBit("cap_bpf"); !ok || bit != 39 {
		t.Errorf("CapBit(cap_bpf) = %d, %v", bit, ok)
	}
}

func TestParseMountInfo(t *testing.T) {
	text := `21 26 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 1 254:0 / / ro,relatime master:1 shared:2 - ext4 /dev/vda rw
90 26 0:45 /sub /mnt/with\040space rw - tmpfs my\040src rw,size=1024k
`
	ms, err := ParseMountInfo(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("got %d mounts", len(ms))
	}
	p := ms[0]
	if p.ID != 21 || p.ParentID != 26 || p.Dev != "0:20" || p.MountPoint != "/proc" || p.FSType != "proc" ||
		p.ReadOnly || !p.HasOption("noexec") || !reflect.DeepEqual(p.Optional, []string{"shared:12"}) {
		t.Errorf("proc mount: %+v", p)
	}
	root := ms[1]
	if !root.ReadOnly || root.Source != "/dev/vda" || len(root.Optional) != 2 || root.SuperOptions[0] != "rw" {
		t.Errorf("root mount: %+v", root)
	}
	sp := ms[2]
	if sp.MountPoint != "/mnt/with space" || sp.Source != "my src" || sp.Root != "/sub" || len(sp.Optional) != 0 {
		t.Errorf("escaped mount: %+v", sp)
	}
	for _, bad := range []string{"21 26 0:20 / /proc rw - proc", "x 26 0:20 / /p rw - proc proc rw", "21 26 0:20 / /p rw shared:1 proc proc rw"} {
		if _, err := ParseMountInfo(bad); err == nil {
			t.Errorf("ParseMountInfo(%q): no error", bad)
		}
	}
	if got := unescapeMountPath(`a\134b\0`); got != `a\b\0` {
		t.Errorf("unescape: %q", got)
	}
}

func TestParseCgroup(t *testing.T) {
	cg, err := ParseCgroup("12:cpu,cpuacct:/a/b\n1:name=systemd:/\n0::/vessel-test/c1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []CgroupEntry{
		{12, []string{"cpu", "cpuacct"}, "/a/b"},
		{1, []string{"name=systemd"}, "/"},
		{0, []string{}, "/vessel-test/c1"},
	}
	if !reflect.DeepEqual(cg, want) {
		t.Errorf("got %+v", cg)
	}
	if _, err := ParseCgroup("garbage\n"); err == nil {
		t.Error("no error for a line without colons")
	}
	if _, err := ParseCgroup("x:cpu:/\n"); err == nil {
		t.Error("no error for a bad hierarchy id")
	}
}

func TestParseNamespaceLink(t *testing.T) {
	kind, ino, err := ParseNamespaceLink("pid:[4026531836]")
	if err != nil || kind != "pid" || ino != 4026531836 {
		t.Errorf("got %q %d %v", kind, ino, err)
	}
	for _, bad := range []string{"pid", "pid:[x]", "pid:[1", "/dev/null"} {
		if _, _, err := ParseNamespaceLink(bad); err == nil {
			t.Errorf("ParseNamespaceLink(%q): no error", bad)
		}
	}
}

func TestParseNamespaceFlags(t *testing.T) {
	cases := map[string]uintptr{
		"user":                 unix.CLONE_NEWUSER,
		"mnt,net":              unix.CLONE_NEWNS | unix.CLONE_NEWNET,
		"pid|uts|ipc":          unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		"CLONE_NEWCGROUP,time": unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME,
		"0x20000":              unix.CLONE_NEWNS,
		"131072":               unix.CLONE_NEWNS,
	}
	for in, want := range cases {
		got, err := ParseNamespaceFlags(in)
		if err != nil || got != want {
			t.Errorf("ParseNamespaceFlags(%q) = %#x, %v; want %#x", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "bogus", "net,bogus"} {
		if _, err := ParseNamespaceFlags(bad); err == nil {
			t.Errorf("ParseNamespaceFlags(%q): no error", bad)
		}
	}
}

func TestParseSignalAndDuration(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": unix.SIGTERM, "SIGKILL": unix.SIGKILL, "usr1": unix.SIGUSR1, "9": unix.SIGKILL, "0": 0} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseSignal("NOPE"); err == nil {
		t.Error("ParseSignal(NOPE): no error")
	}
	for in, want := range map[string]time.Duration{"2": 2 * time.Second, "0.5": 500 * time.Millisecond, "150ms": 150 * time.Millisecond} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"-1", "x", "-2s"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q): no error", bad)
		}
	}
}

func TestStatField(t *testing.T) {
	stat := "1234 (a) b (c)) S 1 1234 1234 34816 1234 4194560 0 0"
	if v, err := statField(stat, 4); err != nil || v != 1 {
		t.Errorf("ppid: %d %v", v, err)
	}
	if v, err := statField(stat, 7); err != nil || v != 34816 {
		t.Errorf("tty_nr: %d %v", v, err)
	}
	if _, err := statField(stat, 99); err == nil {
		t.Error("no error for a missing field")
	}
}

func TestFileKind(t *testing.T) {
	if got := fileKind(unix.S_IFCHR|0o666, unix.Mkdev(1, 3)); got != "chardev 1:3" {
		t.Errorf("got %q", got)
	}
	if got := fileKind(unix.S_IFDIR|0o755, 0); got != "dir" {
		t.Errorf("got %q", got)
	}
}

func TestTryUsageErrors(t *testing.T) {
	cases := [][]string{
		{"no-such-action"},
		{"chroot-escape"},
		{"unshare-ns", "bogus"},
		{"connect"},
		{"bind", "70000"},
		{"open", "/x", "sideways"},
		{"syscall", "abc"},
		{"kill", "x"},
		{"setns-pid1", "mnt,bogus"},
	}
	for _, c := range cases {
		if _, err := Try(c[0], c[1:]); err == nil || !strings.Contains(err.Error(), "probe try") {
			t.Errorf("Try%v: err = %v, want a usage error", c, err)
		}
	}
	names := TryActions()
	for _, want := range []string{"mount", "umount", "pivot_root", "chroot-escape", "mknod", "open_by_handle_at",
		"ptrace-attach", "write-sysrq", "write-procsys", "write-sys", "keyctl", "unshare-user", "unshare-ns",
		"release-agent", "read-root", "write-exe", "setns-pid1", "connect", "bind", "open", "syscall", "clone-ns",
		"kill", "sethostname", "settime", "chown", "setuid"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("action %q missing from TryActions()", want)
		}
	}
}
