package network

import (
	"os"
	"strings"
)

const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func writeSysctl(path, value string) error {
	return os.WriteFile(path, []byte(value), 0o644)
}
