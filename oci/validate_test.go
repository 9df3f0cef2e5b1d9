package oci

import (
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
)

// TestFromSpecRefusesNULBytes: a NUL byte in any string of the spec is
// an error naming the string's JSON path.
func TestFromSpecRefusesNULBytes(t *testing.T) {
	for _, c := range []struct {
		field string
		edit  func(s *specs.Spec)
	}{
		{"process.args[1]", func(s *specs.Spec) { s.Process.Args = []string{"/bin/echo", "a\x00b"} }},
		{"process.env[0]", func(s *specs.Spec) { s.Process.Env[0] = "PATH=/bin\x00:/x" }},
		{"process.cwd", func(s *specs.Spec) { s.Process.Cwd = "/\x00tmp" }},
		{"hostname", func(s *specs.Spec) { s.Hostname = "a\x00b" }},
		{"root.path", func(s *specs.Spec) { s.Root.Path = "rootfs\x00/../x" }},
		{"mounts[0].destination", func(s *specs.Spec) { s.Mounts[0].Destination = "/proc\x00x" }},
		{"mounts[1].source", func(s *specs.Spec) { s.Mounts[1].Source = "tmp\x00fs" }},
		{"linux.maskedPaths[0]", func(s *specs.Spec) { s.Linux.MaskedPaths = []string{"/x\x00"} }},
		{`annotations["k"]`, func(s *specs.Spec) { s.Annotations = map[string]string{"k": "v\x00"} }},
		{`linux.sysctl["net.ipv4.ip_forward"]`, func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1\x00"} }},
	} {
		s := baseSpec()
		c.edit(s)
		_, err := FromSpec(s, "/bundle")
		if assert.Error(t, err, c.field) {
			assert.Contains(t, err.Error(), "invalid "+c.field+": contains a NUL byte", c.field)
		}
	}
}

// TestFromSpecRefusesBadHostnames: hostname and domainname are RFC 1123
// names in the OCI path too.
func TestFromSpecRefusesBadHostnames(t *testing.T) {
	for _, h := range []string{"a/b\nc", "a b", "-x", strings.Repeat("a", 65)} {
		s := baseSpec()
		s.Hostname = h
		_, err := FromSpec(s, "/bundle")
		if assert.Error(t, err) {
			assert.Contains(t, err.Error(), "invalid hostname:")
		}
		s = baseSpec()
		s.Domainname = h
		_, err = FromSpec(s, "/bundle")
		if assert.Error(t, err) {
			assert.Contains(t, err.Error(), "invalid domainname:")
		}
	}
	s := baseSpec()
	s.Hostname, s.Domainname = "web-1.example", "example"
	_, err := FromSpec(s, "/bundle")
	assert.NoError(t, err)
}
