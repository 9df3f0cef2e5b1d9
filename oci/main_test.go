package oci

import (
	"os"
	"testing"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
)

// TestMain makes the test binary a vessel program: containers started by
// the tests re-execute it and Init turns those children into container
// inits.
func TestMain(m *testing.M) {
	vessel.Init()
	// Every cgroup the tests make goes under vessel-test.
	os.Setenv("VESSEL_CGROUP_GROUP", testutil.CgroupGroup)
	testutil.Main(m)
}
