package vessel_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
)

// envMap turns KEY=VALUE pairs into a map.
func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return m
}

// A process gets PATH, HOME (from its user), HOSTNAME and, with a
// terminal, TERM, unless the caller sets them; seen from the inside.
func TestDefaultEnvironment(t *testing.T) {
	t.Run("root", func(t *testing.T) {
		env := envMap(report(t, newConfig().WithHostname("envbox")).Env)
		assert.Equal(t, vessel.DefaultPath, env["PATH"])
		assert.Equal(t, "/root", env["HOME"])
		assert.Equal(t, "envbox", env["HOSTNAME"])
		assert.NotContains(t, env, "TERM", "no terminal, no TERM")
	})
	t.Run("other user, hostname from the id", func(t *testing.T) {
		cfg := newConfig().WithUser(1000, 1000)
		env := envMap(report(t, cfg).Env)
		assert.Equal(t, "/", env["HOME"])
		assert.NotEmpty(t, env["HOSTNAME"])
	})
	t.Run("caller's values win", func(t *testing.T) {
		cfg := newConfig().WithEnv("HOME=/work", "PATH=/opt/bin", "HOSTNAME=mine", "TERM=dumb").WithTTY(true)
		env := envMap(report(t, cfg).Env)
		assert.Equal(t, "/work", env["HOME"])
		assert.Equal(t, "/opt/bin", env["PATH"])
		assert.Equal(t, "mine", env["HOSTNAME"])
		assert.Equal(t, "dumb", env["TERM"])
	})
	t.Run("terminal", func(t *testing.T) {
		env := envMap(report(t, newConfig().WithTTY(true)).Env)
		assert.Equal(t, "xterm", env["TERM"])
	})
	t.Run("exec with its own environment", func(t *testing.T) {
		c, _ := start(t, withProbe(t, newConfig().WithHostname("execbox")), "sleep", "30")
		var out bytes.Buffer
		cmd := vessel.Command("/bin/sh", "-c", "echo $HOME:$HOSTNAME:$PATH:$ONLY")
		cmd.Env = []string{"ONLY=1"}
		cmd.User = &vessel.User{UID: 1000, GID: 1000}
		cmd.Stdout = &out
		p, err := c.Exec(context.Background(), cmd)
		require.NoError(t, err)
		require.NoError(t, p.Wait())
		assert.Equal(t, "/:execbox:"+vessel.DefaultPath+":1", strings.TrimSpace(out.String()))
	})
}
