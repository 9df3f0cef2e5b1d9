package vessel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/openvessel/vessel/internal/child"
)

// The public types are converted field by field at the border with the
// container init, and the public PATH is the one the init adds itself.
func TestPublicTypesConvertAtTheBorder(t *testing.T) {
	assert.Equal(t, child.DefaultPath, DefaultPath)

	u := &User{UID: 7, GID: 8, Groups: []uint32{9, 10}}
	assert.Equal(t, &child.User{UID: 7, GID: 8, Groups: []uint32{9, 10}}, childUser(u))
	assert.Nil(t, childUser(nil))

	h := []Hook{{Path: "/bin/hook", Args: []string{"hook", "x"}, Env: []string{"A=1"}, Timeout: time.Second}}
	assert.Equal(t, []child.Hook{{Path: "/bin/hook", Args: []string{"hook", "x"}, Env: []string{"A=1"}, Timeout: time.Second}}, childHooks(h))
	assert.Nil(t, childHooks(nil))
}

func TestDefaultEnv(t *testing.T) {
	assert.Equal(t, []string{"PATH=" + DefaultPath, "HOME=/root", "HOSTNAME=h"}, defaultEnv(nil, 0, "h", false))
	assert.Equal(t, []string{"HOME=/x", "PATH=" + DefaultPath, "TERM=xterm"}, defaultEnv([]string{"HOME=/x"}, 1000, "", true))
	assert.Equal(t, []string{"PATH=/p", "TERM=vt100", "HOME=/", "HOSTNAME=h"}, defaultEnv([]string{"PATH=/p", "TERM=vt100"}, 5, "h", true))
}
