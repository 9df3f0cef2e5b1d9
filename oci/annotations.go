package oci

import (
	"strconv"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
)

// Annotations that set the limits of a container that the runtime spec
// has no field for (the others come from linux.resources,
// process.rlimits and linux.sysctl: memory.kernelTCP for TCP buffers,
// RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_SIGPENDING, kernel.shmall and
// kernel.shmmax).
const (
	// AnnotationPtys limits the container's pseudo-terminals (devpts
	// max=): a positive count.
	AnnotationPtys = "org.openvessel.vessel.ptys"
	// AnnotationShmSize is the size of /dev/shm: bytes, or with a unit
	// ("64M").
	AnnotationShmSize = "org.openvessel.vessel.shm-size"
	// AnnotationUsageSampling makes vessel sample the container's usage at
	// that interval ("1s") to keep peaks the kernel does not keep.
	AnnotationUsageSampling = "org.openvessel.vessel.usage-sampling"
)

// annotations applies the vessel annotations of ann to cfg.
func (c *converter) annotations(ann map[string]string, cfg *vessel.Config) {
	const f = "annotations."
	if v, ok := ann[AnnotationPtys]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			c.bad(f+AnnotationPtys, "%q is not a positive count", v)
		} else {
			cfg.Ptys = n
		}
	}
	if v, ok := ann[AnnotationShmSize]; ok {
		n, err := limits.ParseSize(v)
		if err != nil || n < 4096 {
			c.bad(f+AnnotationShmSize, "%q is not a size of at least 4096 bytes", v)
		} else {
			cfg.ShmSize = n
		}
	}
	if v, ok := ann[AnnotationUsageSampling]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Millisecond {
			c.bad(f+AnnotationUsageSampling, "%q is not a duration of at least 10ms", v)
		} else {
			cfg.UsageSampling = d
		}
	}
}

// specAnnotations renders the fields of cfg that the annotations above
// carry (nil when none is set).
func specAnnotations(cfg *vessel.Config) map[string]string {
	ann := map[string]string{}
	if cfg.Ptys > 0 {
		ann[AnnotationPtys] = strconv.FormatInt(cfg.Ptys, 10)
	}
	if cfg.ShmSize > 0 {
		ann[AnnotationShmSize] = strconv.FormatInt(cfg.ShmSize, 10)
	}
	if cfg.UsageSampling > 0 {
		ann[AnnotationUsageSampling] = cfg.UsageSampling.String()
	}
	if len(ann) == 0 {
		return nil
	}
	return ann
}
