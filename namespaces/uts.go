package namespaces

import (
	"fmt"
	"strings"
)

// MaxUTSName is the longest host or domain name a UTS namespace holds
// (the kernel's HOST_NAME_MAX, without the terminating NUL).
const MaxUTSName = 64

// CheckUTSName reports why name cannot be a container's host name or NIS
// domain name, or nil if it can. A valid name is an RFC 1123 host name:
// dot-separated labels of 1 to 63 letters, digits and hyphens, no label
// starting or ending with a hyphen, at most MaxUTSName bytes in all. The
// name ends up verbatim in /etc/hostname and /etc/hosts, so anything else
// (a slash, a newline, a space) would let it say more than a name.
func CheckUTSName(name string) error {
	if name == "" {
		return fmt.Errorf("empty")
	}
	if len(name) > MaxUTSName {
		return fmt.Errorf("%d bytes, longer than the kernel's %d", len(name), MaxUTSName)
	}
	for _, label := range strings.Split(name, ".") {
		switch {
		case label == "":
			return fmt.Errorf("%q has an empty label (RFC 1123: dot-separated labels of letters, digits and '-')", name)
		case len(label) > 63:
			return fmt.Errorf("%q has a label longer than 63 bytes", name)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("%q has a label that starts or ends with '-' (RFC 1123)", name)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q contains %q: only letters, digits, '-' and '.' are allowed (RFC 1123)", name, r)
			}
		}
	}
	return nil
}
