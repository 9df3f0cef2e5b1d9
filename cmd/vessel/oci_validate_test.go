package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel/internal/testutil"
)

// TestOCICreateRefusesNULAndBadHostname: `vessel create` refuses a
// config.json with a NUL byte or a hostname that is no RFC 1123 name,
// naming the JSON field, and leaves no container state behind.
func TestOCICreateRefusesNULAndBadHostname(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	for _, c := range []struct {
		field string
		edit  func(*specs.Spec)
	}{
		{"process.args[1]", func(s *specs.Spec) { s.Process.Args = []string{"/bin/echo", "a\x00b"} }},
		{"root.path", func(s *specs.Spec) { s.Root.Path += "\x00x" }},
		{"hostname", func(s *specs.Spec) { s.Hostname = "a/b\nc" }},
	} {
		b := bundle(t, "nul", []string{"true"}, c.edit)
		r := cli(t, root, "create", "-b", b, "nul")
		if r.code == 0 || !strings.Contains(r.stderr, c.field) {
			t.Errorf("create with a bad %s: exit %d, %q", c.field, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(root, "nul")); err == nil {
			t.Errorf("a refused create left %s behind", filepath.Join(root, "nul"))
			cli(t, root, "delete", "--force", "nul")
		}
	}
}
