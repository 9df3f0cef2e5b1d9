package vessel_test

import "github.com/openvessel/vessel"

func vesselConfigForCycles() *vessel.Config {
	return vessel.NewConfig().WithHostname("cycle")
}
