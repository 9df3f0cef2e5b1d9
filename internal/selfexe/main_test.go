package selfexe

import (
	"testing"

	"github.com/openvessel/vessel/internal/testutil"
)

// TestMain runs the tests from a static build (testutil.Main), the kind
// of program the shim is made for.
func TestMain(m *testing.M) { testutil.Main(m) }
