package selfexe

import (
	"os"
	"testing"

	"github.com/openvessel/vessel/internal/testutil"
)

// TestMain runs the tests from a static build (testutil.Main), the kind
// of program the shim is made for. Started as the shim's child
// (TestShimRunsTheProgramOnlyWhereItIsHeld), it says what it runs as.
func TestMain(m *testing.M) {
	if os.Getenv("SELFEXE_SHIM_CHILD") == "1" {
		l, _ := os.Readlink("/proc/self/exe")
		os.Stdout.WriteString("shim child " + l + "\n")
		os.Exit(0)
	}
	testutil.Main(m)
}
