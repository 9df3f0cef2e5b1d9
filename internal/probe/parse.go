package probe

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseIDMap parses the text of /proc/PID/uid_map or gid_map ("inside outside
// count" per line). An empty text (no mapping written yet) gives no entries.
func ParseIDMap(text string) ([]IDMapEntry, error) {
	var out []IDMapEntry
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %d %q: want 3 fields, have %d", i+1, line, len(f))
		}
		var v [3]uint32
		for j := range f {
			n, err := strconv.ParseUint(f[j], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %d %q: field %d: %w", i+1, line, j+1, err)
			}
			v[j] = uint32(n)
		}
		out = append(out, IDMapEntry{Inside: v[0], Outside: v[1], Count: v[2]})
	}
	return out, nil
}

// ParseStatus parses /proc/PID/status into a key -> value map, values trimmed.
func ParseStatus(text string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// ParseCapSet decodes a capability mask as printed in /proc/PID/status
// (hexadecimal, e.g. "000001ffffffffff").
func ParseCapSet(hex string) (CapSet, error) {
	hex = strings.TrimSpace(hex)
	mask, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return CapSet{}, fmt.Errorf("capability mask %q: %w", hex, err)
	}
	return CapSet{Hex: fmt.Sprintf("%016x", mask), Names: CapNames(mask)}, nil
}

// CapNames lists the names (e.g. "CAP_SYS_ADMIN") of the bits set in mask, in
// bit order. Bits without a known name are given as "CAP_<bit>".
func CapNames(mask uint64) []string {
	names := []string{}
	for bit := 0; bit < 64; bit++ {
		if mask&(1<<uint(bit)) == 0 {
			continue
		}
		names = append(names, CapName(bit))
	}
	return names
}

// CapName gives the name of capability bit number bit, "CAP_<bit>" if unknown.
func CapName(bit int) string {
	if bit >= 0 && bit < len(capNames) {
		return "CAP_" + capNames[bit]
	}
	return "CAP_" + strconv.Itoa(bit)
}

// CapBit gives the bit number of a capability name, with or without the
// "CAP_" prefix and in any case; ok is false for an unknown name.
func CapBit(name string) (bit int, ok bool) {
	n := strings.TrimPrefix(strings.ToUpper(name), "CAP_")
	for i, c := range capNames {
		if c == n {
			return i, true
		}
	}
	if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < 64 {
		return i, true
	}
	return 0, false
}

// capNames holds the capability names of <linux/capability.h> by bit number.
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// ParseMountInfo parses the text of /proc/PID/mountinfo (see proc(5)).
func ParseMountInfo(text string) ([]Mount, error) {
	var out []Mount
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMountInfoLine(line)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d %q: %w", i+1, line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func parseMountInfoLine(line string) (Mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 10 || sep < 0 || len(f) < sep+4 {
		return Mount{}, fmt.Errorf("want at least 10 fields with a \"-\" separator")
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil {
		return Mount{}, fmt.Errorf("mount id: %w", err)
	}
	if m.ParentID, err = strconv.Atoi(f[1]); err != nil {
		return Mount{}, fmt.Errorf("parent id: %w", err)
	}
	m.Dev = f[2]
	m.Root = unescapeMountPath(f[3])
	m.MountPoint = unescapeMountPath(f[4])
	m.Options = strings.Split(f[5], ",")
	m.Optional = append([]string{}, f[6:sep]...)
	m.FSType = f[sep+1]
	m.Source = unescapeMountPath(f[sep+2])
	m.SuperOptions = strings.Split(f[sep+3], ",")
	for _, o := range m.Options {
		if o == "ro" {
			m.ReadOnly = true
		}
	}
	return m, nil
}

// unescapeMountPath undoes the octal escapes (\040 for space, \011, \012,
// \134) the kernel uses in mountinfo paths.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseCgroup parses the text of /proc/PID/cgroup ("id:controllers:path").
func ParseCgroup(text string) ([]CgroupEntry, error) {
	var out []CgroupEntry
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroup line %d %q: want id:controllers:path", i+1, line)
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("cgroup line %d %q: hierarchy id: %w", i+1, line, err)
		}
		e := CgroupEntry{HierarchyID: id, Path: parts[2], Controllers: []string{}}
		if parts[1] != "" {
			e.Controllers = strings.Split(parts[1], ",")
		}
		out = append(out, e)
	}
	return out, nil
}

// ParseNamespaceLink parses a /proc/PID/ns/* link target such as
// "pid:[4026531836]" into its type and inode number.
func ParseNamespaceLink(link string) (kind string, inode uint64, err error) {
	kind, rest, ok := strings.Cut(link, ":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return "", 0, fmt.Errorf("namespace link %q: want type:[inode]", link)
	}
	inode, err = strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("namespace link %q: %w", link, err)
	}
	return kind, inode, nil
}

// ParseIntList parses whitespace separated decimal integers, as in the
// NSpid: line of /proc/PID/status.
func ParseIntList(s string) ([]int, error) {
	out := []int{}
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("integer list %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}
