package limits_test

import (
	"fmt"

	"github.com/openvessel/vessel/limits"
)

func ExampleParseRlimit() {
	r, err := limits.ParseRlimit("nofile=1024:4096")
	fmt.Println(r.Type, r.Soft, r.Hard, err)
	// Output: RLIMIT_NOFILE 1024 4096 <nil>
}

func ExampleResources_Validate() {
	size, _ := limits.ParseSize("512M")
	r := limits.Resources{
		Memory: &limits.Memory{Limit: limits.Ptr(size)},
		CPU:    &limits.CPU{CPUs: limits.Ptr(0.0)},
	}
	fmt.Println(r.Validate())
	// Output: invalid cpu.cpus: 0 is not a valid quota (use -1 for unlimited)
}
