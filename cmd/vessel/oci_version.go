package main

import (
	"fmt"
	"runtime"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// versionText is what --version and version print, in runc's shape (tools
// such as podman's info read the lines after the first): the version, the
// runtime-spec version implemented, and the Go version.
func versionText() string {
	return fmt.Sprintf("vessel version %s\nspec: %s\ngo: %s\n", Version, specs.Version, runtime.Version())
}
