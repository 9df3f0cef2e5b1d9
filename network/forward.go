package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// forwardDir records, host-wide, which vessel state directories need IP
// forwarding and what the sysctl was before vessel changed it, one
// subdirectory per sysctl ("ipv4", "ipv6") with users/ and original. It is
// not per Manager because the sysctls are not: two managers with their own
// state must not restore the value under each other's feet.
var forwardDir = "/run/vessel/forwarding"

const (
	forwardIPv4 = "ipv4"
	forwardIPv6 = "ipv6"
)

func forwardSysctl(family string) string {
	if family == forwardIPv6 {
		// Setting "all" switches every interface to router behaviour for
		// IPv6: interfaces with accept_ra=1 stop accepting router
		// advertisements (accept_ra=2 keeps them).
		return "/proc/sys/net/ipv6/conf/all/forwarding"
	}
	return ipForwardPath
}

// acquireForward registers user as needing forwarding of family and
// enables it, remembering the previous value when it was off.
func acquireForward(family, user string) error {
	lk, err := lockState(forwardDir, true)
	if err != nil {
		return err
	}
	defer lk.unlock()
	dir := filepath.Join(forwardDir, family)
	if err := os.MkdirAll(filepath.Join(dir, "users"), 0o700); err != nil {
		return err
	}
	orig := filepath.Join(dir, "original")
	cur, err := readSysctl(forwardSysctl(family))
	if err != nil {
		return fmt.Errorf("network: read %s forwarding: %w", family, err)
	}
	if cur != "1" {
		if _, err := os.Stat(orig); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(orig, []byte(cur), 0o600); err != nil {
				return err
			}
		}
		if err := writeSysctl(forwardSysctl(family), "1"); err != nil {
			return fmt.Errorf("network: enable %s forwarding: %w", family, err)
		}
	}
	return os.WriteFile(filepath.Join(dir, "users", user), nil, 0o600)
}

// releaseForward unregisters user; the last user restores the value the
// sysctl had before vessel enabled it (if vessel did).
func releaseForward(family, user string) error {
	lk, err := lockState(forwardDir, true)
	if err != nil {
		return err
	}
	defer lk.unlock()
	dir := filepath.Join(forwardDir, family)
	users := filepath.Join(dir, "users")
	if err := os.Remove(filepath.Join(users, user)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if left, _ := os.ReadDir(users); len(left) > 0 {
		return nil
	}
	os.Remove(users) // only when empty; recreated on demand
	defer os.Remove(dir)
	orig := filepath.Join(dir, "original")
	was, err := os.ReadFile(orig)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := writeSysctl(forwardSysctl(family), string(was)); err != nil {
		return fmt.Errorf("network: restore %s forwarding: %w", family, err)
	}
	return os.Remove(orig)
}
