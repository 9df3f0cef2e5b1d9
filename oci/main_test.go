package oci

import (
	"testing"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
)

// TestMain makes the test binary a vessel program: containers started by
// the tests re-execute it and Init turns those children into container
// inits.
func TestMain(m *testing.M) {
	vessel.Init()
	testutil.Main(m)
}
