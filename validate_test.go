package vessel_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/network"
)

// Every limit out of range fails at Validate and at New, with a
// ConfigError naming the field in the Config's JSON naming, never later.
// The With methods only set fields: a value built with them and the same
// value set in the struct fail alike.
func TestValidateLimitsAtNew(t *testing.T) {
	withResources := func(r *limits.Resources) *vessel.Config { return newConfig().WithResources(r) }
	cases := []struct {
		name  string
		cfg   *vessel.Config
		field string
	}{
		{"WithCPUs(0)", newConfig().WithCPUs(0), "resources.cpu.cpus"},
		{"WithCPUs(-2)", newConfig().WithCPUs(-2), "resources.cpu.cpus"},
		{"WithPids(0)", newConfig().WithPids(0), "resources.pids.max"},
		{"WithPids(-2)", newConfig().WithPids(-2), "resources.pids.max"},
		{"negative memory", newConfig().WithMemoryLimit(-5), "resources.memory.limit"},
		{"zero memory", newConfig().WithMemoryLimit(0), "resources.memory.limit"},
		{"negative reservation", newConfig().WithMemoryReservation(-3), "resources.memory.reservation"},
		{"WithUmask", newConfig().WithUmask(0o7777), "process.umask"},
		{"WithTimeout", newConfig().WithTimeout(-time.Second), "timeout"},
		{"WithCPUTime", newConfig().WithCPUTime(-time.Second), "cpuTime"},
		{"WithOOMScoreAdj", newConfig().WithOOMScoreAdj(1001), "oomScoreAdj"},
		{"WithRlimit", newConfig().WithRlimit(limits.Rlimit{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}), "rlimits[0]"},
		{"WithEnv", newConfig().WithEnv("A=1", "NOVALUE"), "process.env[2]"},
		{"WithPtys", newConfig().WithPtys(-1), "ptys"},
		{"WithSysVShm", newConfig().WithSysVShm(-1, 0), "sysctl[kernel.shmall]"},
		{"swap -2", newConfig().WithMemorySwap(-2), "resources.memory.swap"},
		{"swap below memory", newConfig().WithMemoryLimit(64 << 20).WithMemorySwap(32 << 20), "resources.memory.swap"},
		{"cpu weight 0", newConfig().WithCPUWeight(0), "resources.cpu.weight"},
		{"bad cpuset", newConfig().WithCPUSet("zero", ""), "resources.cpu.cpuset"},
		{"struct cpus 0", withResources(&limits.Resources{CPU: &limits.CPU{CPUs: limits.Ptr(0.0)}}), "resources.cpu.cpus"},
		{"struct pids 0", withResources(&limits.Resources{Pids: &limits.Pids{Max: limits.Ptr(int64(0))}}), "resources.pids.max"},
		{"struct negative memory", withResources(&limits.Resources{Memory: &limits.Memory{Limit: limits.Ptr(int64(-7))}}), "resources.memory.limit"},
		{"struct rlimit soft above hard", func() *vessel.Config {
			c := newConfig()
			c.Rlimits = []limits.Rlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}}
			return c
		}(), "rlimits[0]"},
		{"struct oom score", func() *vessel.Config { c := newConfig(); v := 5000; c.OOMScoreAdj = &v; return c }(), "oomScoreAdj"},
		{"struct negative timeout", func() *vessel.Config { c := newConfig(); c.Timeout = -time.Second; return c }(), "timeout"},
		{"struct negative cpu time", func() *vessel.Config { c := newConfig(); c.CPUTime = -time.Second; return c }(), "cpuTime"},
		{"struct umask", func() *vessel.Config { c := newConfig(); u := uint32(0o7777); c.Process.Umask = &u; return c }(), "process.umask"},
		{"network subnet", newConfig().WithNetwork(&network.Config{Mode: network.ModeBridge, Subnet: "10.1.2.3/24"}), "network.subnet"},
		{"network publish", newConfig().WithNetwork(&network.Config{Mode: network.ModeBridge, Publish: []network.Port{{HostPort: 0, ContainerPort: 80}}}), "network.publish[0]"},
		{"sysctl", newConfig().WithSysctl("kernel.panic", "1"), "sysctl[kernel.panic]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for what, err := range map[string]error{"Validate": tc.cfg.Validate(), "New": newErr(tc.cfg)} {
				var ce *vessel.ConfigError
				require.Truef(t, errors.As(err, &ce), "%s: got %v, want a ConfigError", what, err)
				assert.Equal(t, tc.field, ce.Field, "%s: %v", what, err)
				assert.NotEmpty(t, ce.Reason)
				// One type for every package: the same error is a fielderr.Error.
				var fe *fielderr.Error
				assert.True(t, errors.As(err, &fe))
			}
		})
	}
}

func newErr(cfg *vessel.Config) error {
	_, err := vessel.New("bad", cfg)
	return err
}

// Several problems are all reported, each with its own field.
func TestValidateReportsEveryField(t *testing.T) {
	err := newConfig().WithCPUs(0).WithPids(0).WithMemoryLimit(-5).Validate()
	var fields []string
	for _, e := range fielderr.Split(err) {
		var ce *vessel.ConfigError
		require.True(t, errors.As(e, &ce), "%v", e)
		fields = append(fields, ce.Field)
	}
	assert.ElementsMatch(t, []string{"resources.cpu.cpus", "resources.pids.max", "resources.memory.limit"}, fields)

	// Good values pass, and the limits are kept.
	cfg := newConfig().WithCPUs(0.5).WithPids(64).WithMemoryLimit(64 << 20).WithMemorySwap(-1)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, 0.5, *cfg.Resources.CPU.CPUs)
	assert.Equal(t, int64(64), *cfg.Resources.Pids.Max)

	// limits.Unlimited (-1) says "no limit" out loud, in the With
	// methods as in the fields (and in OCI specs).
	cfg = newConfig().WithCPUs(-1).WithPids(limits.Unlimited).WithMemoryLimit(limits.Unlimited)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, -1.0, *cfg.Resources.CPU.CPUs)
}

// A Config has no state beyond its fields: one that fails Validate fails
// the same way after a JSON round trip, and a With call that leaves a
// bad value is seen in the field it sets.
func TestConfigIsItsFields(t *testing.T) {
	cfg := newConfig().WithCPUs(0).WithNamespace("bogus", "")
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	var back vessel.Config
	require.NoError(t, json.Unmarshal(data, &back))
	fields := func(err error) []string {
		var out []string
		for _, e := range fielderr.Split(err) {
			var ce *vessel.ConfigError
			require.True(t, errors.As(e, &ce), "%v", e)
			out = append(out, ce.Field)
		}
		return out
	}
	want := fields(cfg.Validate())
	assert.Contains(t, want, "resources.cpu.cpus")
	assert.Len(t, want, 2)
	assert.Equal(t, want, fields(back.Validate()))
	assert.Equal(t, 0.0, *cfg.Resources.CPU.CPUs)
}
