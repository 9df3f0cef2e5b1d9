package vessel_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
)

// TestMain makes the test binary a vessel program: containers started by
// the tests re-execute it, and Init turns those children into container
// inits. A second mode turns it into a helper process for the tests that
// need a controlling program they can kill.
func TestMain(m *testing.M) {
	vessel.Init()
	// Every cgroup the tests (and the examples) make goes under vessel-test.
	os.Setenv("VESSEL_CGROUP_GROUP", "vessel-test")
	if mode := os.Getenv("VESSEL_TEST_HELPER"); mode != "" {
		os.Exit(runHelper(mode))
	}
	if os.Geteuid() != 0 && os.Getenv("VESSEL_ROOTLESS") != "1" {
		fmt.Fprintln(os.Stderr, "vessel tests must run as root (they create namespaces and mounts); TestRootless reruns a subset as an ordinary user")
		os.Exit(1)
	}
	testutil.Main(m)
}
