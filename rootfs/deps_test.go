package rootfs

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestInitLinksNoStorage: the container's init (internal/child, which
// links this package) must not carry the host-side storage code, nor
// anything that unpacks, compresses or hashes.
func TestInitLinksNoStorage(t *testing.T) {
	goTool, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("the go command is needed to list the init's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/openvessel/vessel/internal/child").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !slices.Contains(deps, "github.com/openvessel/vessel/rootfs") {
		t.Fatalf("implausible dependency list of internal/child: %v", deps)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "archive/") || strings.HasPrefix(d, "compress/") || strings.HasPrefix(d, "crypto/") ||
			d == "github.com/openvessel/vessel/storage" {
			t.Errorf("the container's init links %s", d)
		}
	}
}
