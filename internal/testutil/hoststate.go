package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/openvessel/vessel/internal/probe"
)

// HostState is what a leak test compares before and after: the test
// process's mount table, open descriptors and child processes, and the
// host's network links and named network namespaces.
type HostState struct {
	// MountCount is the number of lines in /proc/self/mountinfo.
	MountCount int
	// MountPoints counts the mounts at each mount point ("fstype" is kept
	// in MountTypes for messages).
	MountPoints map[string]int
	MountTypes  map[string]string
	// FDs maps each open descriptor of the test process to its link target.
	FDs map[int]string
	// Children maps the pid of each child process of the test process
	// (zombies included) to "comm (state)".
	Children map[int]string
	// Links lists the names in /sys/class/net, sorted.
	Links []string
	// NetNS lists the names in /run/netns, sorted (empty if it does not
	// exist).
	NetNS []string
}

// SnapshotHost records the current HostState. It fails the test if a part
// cannot be read. Take both snapshots from the same goroutine with no
// parallel test running in this process: those would open descriptors and
// start children of their own.
func SnapshotHost(t testing.TB) HostState {
	t.Helper()
	s, err := snapshotHost()
	if err != nil {
		t.Fatalf("testutil.SnapshotHost: %v", err)
	}
	return s
}

func snapshotHost() (HostState, error) {
	var s HostState
	// Make the Go runtime create its network poller descriptors now, so
	// that they are in every snapshot and not mistaken for a leak.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}

	text, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return s, err
	}
	mounts, err := probe.ParseMountInfo(string(text))
	if err != nil {
		return s, err
	}
	s.MountCount = len(mounts)
	s.MountPoints = map[string]int{}
	s.MountTypes = map[string]string{}
	for _, m := range mounts {
		s.MountPoints[m.MountPoint]++
		s.MountTypes[m.MountPoint] = m.FSType
	}

	if s.FDs, err = openFDs(); err != nil {
		return s, err
	}
	if s.Children, err = Children(os.Getpid()); err != nil {
		return s, err
	}
	if s.Links, err = dirNames("/sys/class/net"); err != nil {
		return s, err
	}
	if s.NetNS, err = dirNames("/run/netns"); err != nil && !os.IsNotExist(err) {
		return s, err
	}
	if s.NetNS == nil {
		s.NetNS = []string{}
	}
	return s, nil
}

// openFDs lists the process's descriptors, without the one used to list.
func openFDs() (map[int]string, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	self := int(d.Fd())
	out := map[int]string{}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd == self {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + n)
		if err != nil {
			continue // closed meanwhile
		}
		out[fd] = target
	}
	return out, nil
}

// Children scans /proc for the processes whose parent is pid and returns
// each one's "comm (state)".
func Children(pid int) (map[int]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, e := range entries {
		cpid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		comm, state, ppid, ok := parseStat(string(b))
		if ok && ppid == pid {
			out[cpid] = comm + " (" + state + ")"
		}
	}
	return out, nil
}

// ProcState returns the state letter /proc/PID/stat shows (R, S, Z, ...),
// or "" when pid is gone.
func ProcState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	_, state, _, _ := parseStat(string(b))
	return state
}

// parseStat extracts comm, state and ppid from /proc/PID/stat.
func parseStat(stat string) (comm, state string, ppid int, ok bool) {
	lp, rp := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if lp < 0 || rp < lp {
		return "", "", 0, false
	}
	f := strings.Fields(stat[rp+1:])
	if len(f) < 2 {
		return "", "", 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return "", "", 0, false
	}
	return stat[lp+1 : rp], f[0], ppid, true
}

func dirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// DiffOption narrows what Diff and AssertUnchanged compare.
type DiffOption func(*diffConfig)

type diffConfig struct {
	ignoreMount func(mountPoint string) bool
	ignoreLink  func(name string) bool
}

// IgnoreMounts leaves out mount points for which ignore returns true, e.g.
// mounts made by other test binaries that `go test ./...` runs at the same
// time in the same mount namespace. The total mount count is then not
// compared either.
func IgnoreMounts(ignore func(mountPoint string) bool) DiffOption {
	return func(c *diffConfig) { c.ignoreMount = ignore }
}

// IgnoreLinks leaves out network links (and named network namespaces) for
// which ignore returns true, e.g. links made by other test binaries running
// at the same time.
func IgnoreLinks(ignore func(name string) bool) DiffOption {
	return func(c *diffConfig) { c.ignoreLink = ignore }
}

// Diff lists the differences from s (before) to after, one line each: "+"
// for something that appeared, "-" for something that went away. Children
// that exited are not differences; new children, zombies included, are.
func (s HostState) Diff(after HostState, opts ...DiffOption) []string {
	var c diffConfig
	for _, o := range opts {
		o(&c)
	}
	var d []string
	if c.ignoreMount == nil && s.MountCount != after.MountCount {
		d = append(d, fmt.Sprintf("mount count %d -> %d", s.MountCount, after.MountCount))
	}
	for _, mp := range unionKeys(s.MountPoints, after.MountPoints) {
		if c.ignoreMount != nil && c.ignoreMount(mp) {
			continue
		}
		b, a := s.MountPoints[mp], after.MountPoints[mp]
		switch {
		case a > b:
			d = append(d, fmt.Sprintf("+ mount %s (%s) x%d", mp, after.MountTypes[mp], a-b))
		case a < b:
			d = append(d, fmt.Sprintf("- mount %s (%s) x%d", mp, s.MountTypes[mp], b-a))
		}
	}
	for _, fd := range unionIntKeys(s.FDs, after.FDs) {
		b, inB := s.FDs[fd]
		a, inA := after.FDs[fd]
		switch {
		case inA && !inB:
			d = append(d, fmt.Sprintf("+ fd %d -> %s", fd, a))
		case inB && !inA:
			d = append(d, fmt.Sprintf("- fd %d -> %s", fd, b))
		case a != b:
			d = append(d, fmt.Sprintf("~ fd %d -> %s (was %s)", fd, a, b))
		}
	}
	for _, pid := range unionIntKeys(map[int]string{}, after.Children) {
		if _, ok := s.Children[pid]; !ok {
			d = append(d, fmt.Sprintf("+ child process %d %s", pid, after.Children[pid]))
		}
	}
	d = append(d, diffNames("link", s.Links, after.Links, c.ignoreLink)...)
	d = append(d, diffNames("netns", s.NetNS, after.NetNS, c.ignoreLink)...)
	return d
}

// AssertUnchanged fails the test if after differs from before, listing
// every difference. Unless opts say otherwise (IgnoreMounts, IgnoreLinks),
// it compares only what vessel and this test make: mounts for which
// OwnMount(t) is true, and links and named network namespaces for which
// IsVesselName is true. Other programs on the host (podman, another test
// binary) mount and create links at the same time; a leak check that
// compared the whole host would fail because of them.
func AssertUnchanged(t testing.TB, before, after HostState, opts ...DiffOption) {
	t.Helper()
	own := OwnMount(t)
	scoped := append([]DiffOption{
		IgnoreMounts(func(mp string) bool { return !own(mp) }),
		IgnoreLinks(func(name string) bool { return !IsVesselName(name) }),
	}, opts...)
	if d := before.Diff(after, scoped...); len(d) > 0 {
		t.Errorf("host state changed (leak?):\n  %s", strings.Join(d, "\n  "))
	}
}

// VesselStateDirs are the host directories where vessel keeps state that
// may hold mounts (network namespaces, storage).
var VesselStateDirs = []string{"/run/vessel", "/var/lib/vessel"}

// OwnMount returns the leak-check scope of test t: whether a host mount
// point is one vessel or t could have made. That is a mount below
// VesselStateDirs; below the temporary directory, one in a directory
// named like t's own t.TempDir directories (the top-level test's name,
// as the testing package spells it) or starting with "vessel" (vessel's
// own scratch directories); and in /run/netns, a namespace with a name
// IsVesselName accepts (not /run/netns itself, which `ip netns add`
// mounts over itself once per boot). Another program's test, whose
// temporary directories bear its own test's name, is out of scope.
func OwnMount(t testing.TB) func(mountPoint string) bool {
	name, _, _ := strings.Cut(t.Name(), "/")
	prefix := strings.Map(tempDirRune, name)
	tmp := filepath.Clean(os.TempDir()) + "/"
	return func(mp string) bool {
		if dir, base := filepath.Split(mp); filepath.Clean(dir) == "/run/netns" {
			return IsVesselName(base)
		}
		for _, d := range VesselStateDirs {
			if strings.HasPrefix(mp, d+"/") {
				return true
			}
		}
		rest, ok := strings.CutPrefix(mp, tmp)
		if !ok {
			return false
		}
		top, _, _ := strings.Cut(rest, "/")
		return strings.HasPrefix(top, "vessel") || (prefix != "" && strings.HasPrefix(top, prefix))
	}
}

// tempDirRune keeps the characters the testing package keeps in a
// t.TempDir directory's name and drops the others.
func tempDirRune(r rune) rune {
	if r < utf8.RuneSelf {
		const allowed = "!#$%&()+,-.=@^_{}~ "
		if '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || strings.ContainsRune(allowed, r) {
			return r
		}
		return -1
	}
	if unicode.IsLetter(r) || unicode.IsNumber(r) {
		return r
	}
	return -1
}

// VesselNamePrefixes start the names vessel gives links and network
// namespaces ("vessel0", "vessel-...", veths "vx...") and those its tests
// give theirs ("vt...", "vn...", "vck..."). Tests that make links or named network
// namespaces must use one of them, so that leak checks see them.
var VesselNamePrefixes = []string{"vessel", "vx", "vt", "vn", "vck"}

// IsVesselName reports whether a link or named network namespace name
// starts with one of VesselNamePrefixes.
func IsVesselName(name string) bool {
	for _, p := range VesselNamePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func diffNames(kind string, before, after []string, ignore func(string) bool) []string {
	inB, inA := map[string]bool{}, map[string]bool{}
	for _, n := range before {
		inB[n] = true
	}
	for _, n := range after {
		inA[n] = true
	}
	var d []string
	for _, n := range after {
		if !inB[n] && (ignore == nil || !ignore(n)) {
			d = append(d, "+ "+kind+" "+n)
		}
	}
	for _, n := range before {
		if !inA[n] && (ignore == nil || !ignore(n)) {
			d = append(d, "- "+kind+" "+n)
		}
	}
	return d
}

func unionKeys(a, b map[string]int) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]int{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func unionIntKeys(a, b map[int]string) []int {
	seen := map[int]bool{}
	var out []int
	for _, m := range []map[int]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Ints(out)
	return out
}

// MountsBelow lists the mount points of the test process's mount table
// at or below dir, a container's root (other programs mount and unmount
// elsewhere meanwhile: only these are the container's).
func MountsBelow(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}
