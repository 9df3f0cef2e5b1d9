package limits

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// ParseSize parses a size in bytes as people type it on a command line:
// "1024", "512k", "10M", "1.5G", "2T", with an optional "b", "B" or "iB"
// after the unit ("10MB", "10MiB"). Units are binary (k = 1024) and case
// does not matter. "-1", "max" and "unlimited" return Unlimited.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "-1", "max", "unlimited":
		return Unlimited, nil
	case "":
		return 0, fmt.Errorf("size %q: empty", s)
	}
	low := strings.ToLower(t)
	low = strings.TrimSuffix(low, "ib")
	low = strings.TrimSuffix(low, "b")
	var shift uint
	if n := len(low); n > 0 {
		switch low[n-1] {
		case 'k':
			shift = 10
		case 'm':
			shift = 20
		case 'g':
			shift = 30
		case 't':
			shift = 40
		case 'p':
			shift = 50
		}
		if shift != 0 {
			low = low[:n-1]
		}
	}
	if low == "" || strings.Trim(low, "0123456789.") != "" || strings.Count(low, ".") > 1 || low == "." {
		return 0, fmt.Errorf("size %q: not a number with an optional unit k, m, g, t or p", s)
	}
	whole, frac, _ := strings.Cut(low, ".")
	frac = strings.TrimRight(frac, "0")
	if shift == 0 && frac != "" {
		return 0, fmt.Errorf("size %q: a byte count must be a whole number", s)
	}
	tooLarge := fmt.Errorf("size %q: too large", s)
	w := uint64(0)
	if whole != "" {
		var err error
		if w, err = strconv.ParseUint(whole, 10, 64); err != nil {
			return 0, tooLarge
		}
	}
	if w > math.MaxInt64>>shift {
		return 0, tooLarge
	}
	n := w << shift
	// The fraction's share, rounded down: frac/10^len(frac) units. Digits
	// past the 18th cannot change a result of at most 2^50 bytes per unit.
	if len(frac) > 18 {
		frac = frac[:18]
	}
	if frac != "" {
		f, _ := strconv.ParseUint(frac, 10, 64)
		ten := uint64(1)
		for range frac {
			ten *= 10
		}
		hi, lo := bits.Mul64(f, 1<<shift)
		q, _ := bits.Div64(hi, lo, ten)
		if n+q > math.MaxInt64 {
			return 0, tooLarge
		}
		n += q
	}
	return int64(n), nil
}

// ParseCPUs parses a CPU quota in cores, like Docker's --cpus: "0.5", "2".
func ParseCPUs(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("cpus %q: not a number of cores like 0.5 or 2", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("cpus %q: must be > 0", s)
	}
	return v, nil
}

// ParseDeviceRate parses a bandwidth throttle "DEVICE:RATE" such as
// "/dev/vda:10M" (RATE is a size per second, see [ParseSize]). DEVICE is an
// absolute path or "MAJOR:MINOR" ("8:0:10M").
func ParseDeviceRate(s string) (DeviceRate, error) {
	d, rate, err := splitDeviceRate(s)
	if err != nil {
		return DeviceRate{}, err
	}
	n, err := ParseSize(rate)
	if err != nil || n < 0 {
		return DeviceRate{}, fmt.Errorf("device rate %q: rate %q is not a size like 10M", s, rate)
	}
	d.Rate = uint64(n)
	return d, nil
}

// ParseDeviceIOPS parses an operations-per-second throttle "DEVICE:N" such
// as "/dev/vda:100"; DEVICE is as in [ParseDeviceRate].
func ParseDeviceIOPS(s string) (DeviceRate, error) {
	d, rate, err := splitDeviceRate(s)
	if err != nil {
		return DeviceRate{}, err
	}
	n, err := strconv.ParseUint(rate, 10, 64)
	if err != nil {
		return DeviceRate{}, fmt.Errorf("device iops %q: %q is not a whole number of operations", s, rate)
	}
	d.Rate = n
	return d, nil
}

func splitDeviceRate(s string) (DeviceRate, string, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return DeviceRate{}, "", fmt.Errorf("device rate %q: want DEVICE:RATE, like /dev/vda:10M", s)
	}
	dev, rate := s[:i], s[i+1:]
	if rate == "" {
		return DeviceRate{}, "", fmt.Errorf("device rate %q: missing rate after ':'", s)
	}
	if strings.HasPrefix(dev, "/") {
		return DeviceRate{Path: dev}, rate, nil
	}
	maj, min, ok := strings.Cut(dev, ":")
	a, err1 := strconv.ParseInt(maj, 10, 64)
	b, err2 := strconv.ParseInt(min, 10, 64)
	if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 {
		return DeviceRate{}, "", fmt.Errorf("device rate %q: device %q is neither an absolute path nor MAJOR:MINOR", s, dev)
	}
	return DeviceRate{Major: a, Minor: b}, rate, nil
}
