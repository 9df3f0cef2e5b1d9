package vessel_test

import "github.com/openvessel/vessel"

// newConfig is the default config with the container's cgroup under a
// "vessel-test" group, so tests never create cgroups elsewhere.
func newConfig() *vessel.Config {
	c := vessel.NewConfig()
	c.Cgroup.Group = "vessel-test"
	return c
}

func vesselConfigForCycles() *vessel.Config {
	return newConfig().WithHostname("cycle")
}
