package limits

import (
	"errors"

	"github.com/openvessel/vessel/fielderr"
)

// MinContainerMemory is the smallest memory limit (and memory+swap
// limit) a container may have: below it the kernel OOM-kills the
// container's first process while it is still being set up, and the
// start fails with an error that says nothing about memory. Docker
// refuses limits under the same 6 MiB.
const MinContainerMemory = 6 << 20

// CheckContainer reports limits that a cgroup accepts but that are too
// small for a container to start in, naming the field and the minimum
// ("memory.limit: 1 byte is below the minimum of 6 MiB"). Validate
// checks the rest; a nil Resources passes.
func (r *Resources) CheckContainer() error {
	if r == nil || r.Memory == nil {
		return nil
	}
	var errs []error
	for _, f := range []struct {
		name string
		v    *int64
	}{{"memory.limit", r.Memory.Limit}, {"memory.swap", r.Memory.Swap}} {
		if f.v != nil && *f.v > 0 && *f.v < MinContainerMemory {
			errs = append(errs, fielderr.New(f.name, "%d bytes is below a container's minimum of %d (6 MiB)", *f.v, MinContainerMemory))
		}
	}
	return errors.Join(errs...)
}
