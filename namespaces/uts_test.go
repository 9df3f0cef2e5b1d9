package namespaces

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckUTSName(t *testing.T) {
	for _, ok := range []string{"a", "job-42", "web.example.org", "A1", "x" + strings.Repeat("y", 62), "1.2.3"} {
		assert.NoError(t, CheckUTSName(ok), ok)
	}
	for _, bad := range []string{"", "a/b\nc", "a b", "-a", "a-", "a..b", ".a", "a.", "a_b", "é", "a\x00b",
		strings.Repeat("y", 64) + ".a", strings.Repeat("a.", 32) + "a"} {
		assert.Error(t, CheckUTSName(bad), "%q was accepted", bad)
	}
}
