package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats is the cgroup's resource usage. Fields the host cannot report are
// zero; the Source and Peak fields say what was available.
type Stats struct {
	CPU    CPUStats    `json:"cpu"`
	Memory MemoryStats `json:"memory"`
	Pids   PidsStats   `json:"pids"`
	IO     IOStats     `json:"io"`
	// PSI is pressure-stall information (v2, and the unified cgroup of
	// hybrid hosts); nil when the kernel does not provide it.
	PSI *PSIStats `json:"psi,omitempty"`
}

// CPUStats is CPU time used.
type CPUStats struct {
	Total  time.Duration `json:"total"`
	User   time.Duration `json:"user"`
	System time.Duration `json:"system"`
	// Periods, ThrottledPeriods and Throttled describe CFS quota
	// enforcement.
	Periods          uint64        `json:"periods"`
	ThrottledPeriods uint64        `json:"throttledPeriods"`
	Throttled        time.Duration `json:"throttled"`
}

// MemoryStats is memory use in bytes.
type MemoryStats struct {
	Current uint64 `json:"current"`
	// Peak is the highest use seen; PeakSource names the file it came from
	// ("memory.peak" on v2, "memory.max_usage_in_bytes" on v1), empty when
	// the kernel keeps no peak.
	Peak       uint64 `json:"peak"`
	PeakSource string `json:"peakSource,omitempty"`
	// Limit is the hard limit, 0 when unlimited.
	Limit uint64 `json:"limit"`
	// OOMKills counts processes the OOM killer killed in the cgroup.
	OOMKills uint64 `json:"oomKills"`
}

// PidsStats counts tasks.
type PidsStats struct {
	Current uint64 `json:"current"`
	// Peak is the most tasks seen at once, when the kernel has pids.peak
	// (PeakKnown).
	Peak      uint64 `json:"peak"`
	PeakKnown bool   `json:"peakKnown"`
	// Limit is pids.max, 0 when unlimited.
	Limit uint64 `json:"limit"`
}

// IOStats sums block I/O over all devices.
type IOStats struct {
	ReadBytes  uint64 `json:"readBytes"`
	WriteBytes uint64 `json:"writeBytes"`
	ReadOps    uint64 `json:"readOps"`
	WriteOps   uint64 `json:"writeOps"`
}

// PSIStats is pressure-stall information per resource; a nil field was
// not reported.
type PSIStats struct {
	CPU    *Pressure `json:"cpu,omitempty"`
	Memory *Pressure `json:"memory,omitempty"`
	IO     *Pressure `json:"io,omitempty"`
}

// Pressure is the share of time some (or all, Full) tasks of the cgroup
// were stalled waiting for a resource.
type Pressure struct {
	Some PressureData `json:"some"`
	Full PressureData `json:"full"`
}

// PressureData holds the averages (percent of wall time over 10s, 60s and
// 300s) and the total stall time.
type PressureData struct {
	Avg10  float64       `json:"avg10"`
	Avg60  float64       `json:"avg60"`
	Avg300 float64       `json:"avg300"`
	Total  time.Duration `json:"total"`
}

// Stats reads the cgroup's usage from whichever hierarchy holds each
// controller.
func (m *Manager) Stats() (*Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st Stats
	var errs []error
	unified, hasUnified := m.dirs[unifiedKey]

	if dir, ok := m.v1Dir("cpuacct"); ok {
		errs = append(errs, v1CPU(dir, &st.CPU))
		if cdir, ok := m.v1Dir("cpu"); ok {
			kv, _ := readKV(filepath.Join(cdir, "cpu.stat"))
			st.CPU.Periods, st.CPU.ThrottledPeriods = kv["nr_periods"], kv["nr_throttled"]
			st.CPU.Throttled = time.Duration(kv["throttled_time"])
		}
	} else if hasUnified {
		errs = append(errs, v2CPU(unified, &st.CPU))
	}

	if dir, ok := m.v1Dir("memory"); ok {
		errs = append(errs, v1Memory(dir, &st.Memory))
	} else if hasUnified {
		errs = append(errs, v2Memory(unified, &st.Memory))
	}

	pidsDir, ok := m.v1Dir("pids")
	if !ok && hasUnified {
		pidsDir, ok = unified, true
	}
	if ok {
		errs = append(errs, readPidsStats(pidsDir, &st.Pids))
	}

	if dir, ok := m.v1Dir("blkio"); ok {
		errs = append(errs, v1IO(dir, &st.IO))
	} else if hasUnified {
		errs = append(errs, v2IO(unified, &st.IO))
	}

	if hasUnified {
		st.PSI = readPSI(unified)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cgroups: stats: %w", err)
	}
	return &st, nil
}

// OOMKilled returns how many processes the OOM killer killed in the cgroup.
func (m *Manager) OOMKilled() (uint64, error) {
	st, err := m.Stats()
	if err != nil {
		return 0, err
	}
	return st.Memory.OOMKills, nil
}

func v1CPU(dir string, c *CPUStats) error {
	total, err := readUint(filepath.Join(dir, "cpuacct.usage"))
	if err != nil {
		return err
	}
	c.Total = time.Duration(total)
	user, err1 := readUint(filepath.Join(dir, "cpuacct.usage_user"))
	sys, err2 := readUint(filepath.Join(dir, "cpuacct.usage_sys"))
	if err1 == nil && err2 == nil {
		c.User, c.System = time.Duration(user), time.Duration(sys)
		return nil
	}
	// Older kernels: cpuacct.stat in USER_HZ (100 per second) ticks.
	kv, err := readKV(filepath.Join(dir, "cpuacct.stat"))
	if err != nil {
		return err
	}
	c.User = time.Duration(kv["user"]) * 10 * time.Millisecond
	c.System = time.Duration(kv["system"]) * 10 * time.Millisecond
	return nil
}

func v2CPU(dir string, c *CPUStats) error {
	kv, err := readKV(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	c.Total = time.Duration(kv["usage_usec"]) * time.Microsecond
	c.User = time.Duration(kv["user_usec"]) * time.Microsecond
	c.System = time.Duration(kv["system_usec"]) * time.Microsecond
	c.Periods, c.ThrottledPeriods = kv["nr_periods"], kv["nr_throttled"]
	c.Throttled = time.Duration(kv["throttled_usec"]) * time.Microsecond
	return nil
}

func v1Memory(dir string, s *MemoryStats) error {
	var err error
	if s.Current, err = readUint(filepath.Join(dir, "memory.usage_in_bytes")); err != nil {
		return err
	}
	if s.Peak, err = readUint(filepath.Join(dir, "memory.max_usage_in_bytes")); err == nil {
		s.PeakSource = "memory.max_usage_in_bytes"
	}
	if lim, err := readUint(filepath.Join(dir, "memory.limit_in_bytes")); err == nil && lim < 1<<62 {
		s.Limit = lim
	}
	kv, err := readKV(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return err
	}
	s.OOMKills = kv["oom_kill"]
	return nil
}

func v2Memory(dir string, s *MemoryStats) error {
	var err error
	if s.Current, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // memory controller not enabled here
		}
		return err
	}
	if s.Peak, err = readUint(filepath.Join(dir, "memory.peak")); err == nil {
		s.PeakSource = "memory.peak"
	}
	if lim, err := readUint(filepath.Join(dir, "memory.max")); err == nil {
		s.Limit = lim
	}
	kv, err := readKV(filepath.Join(dir, "memory.events"))
	if err != nil {
		return err
	}
	s.OOMKills = kv["oom_kill"]
	return nil
}

func readPidsStats(dir string, p *PidsStats) error {
	var err error
	if p.Current, err = readUint(filepath.Join(dir, "pids.current")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if p.Peak, err = readUint(filepath.Join(dir, "pids.peak")); err == nil {
		p.PeakKnown = true
	}
	p.Limit, _ = readUint(filepath.Join(dir, "pids.max"))
	return nil
}

func v1IO(dir string, s *IOStats) error {
	parse := func(file string, read, write *uint64) error {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 3 {
				continue // the "Total" line
			}
			v, _ := strconv.ParseUint(fields[2], 10, 64)
			switch fields[1] {
			case "Read":
				*read += v
			case "Write":
				*write += v
			}
		}
		return sc.Err()
	}
	if err := parse("blkio.throttle.io_service_bytes_recursive", &s.ReadBytes, &s.WriteBytes); err != nil {
		return err
	}
	return parse("blkio.throttle.io_serviced_recursive", &s.ReadOps, &s.WriteOps)
}

func v2IO(dir string, s *IOStats) error {
	f, err := os.Open(filepath.Join(dir, "io.stat"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, kv := range strings.Fields(sc.Text())[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				s.ReadBytes += n
			case "wbytes":
				s.WriteBytes += n
			case "rios":
				s.ReadOps += n
			case "wios":
				s.WriteOps += n
			}
		}
	}
	return sc.Err()
}

func readPSI(dir string) *PSIStats {
	var p PSIStats
	p.CPU = readPressure(filepath.Join(dir, "cpu.pressure"))
	p.Memory = readPressure(filepath.Join(dir, "memory.pressure"))
	p.IO = readPressure(filepath.Join(dir, "io.pressure"))
	if p.CPU == nil && p.Memory == nil && p.IO == nil {
		return nil
	}
	return &p
}

// readPressure parses a PSI file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func readPressure(file string) *Pressure {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil // absent, or PSI disabled (EOPNOTSUPP)
	}
	return parsePressure(string(b))
}

func parsePressure(s string) *Pressure {
	var p Pressure
	found := false
	for _, line := range strings.Split(s, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var d *PressureData
		switch fields[0] {
		case "some":
			d = &p.Some
		case "full":
			d = &p.Full
		default:
			continue
		}
		found = true
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "avg10":
				d.Avg10, _ = strconv.ParseFloat(v, 64)
			case "avg60":
				d.Avg60, _ = strconv.ParseFloat(v, 64)
			case "avg300":
				d.Avg300, _ = strconv.ParseFloat(v, 64)
			case "total":
				us, _ := strconv.ParseUint(v, 10, 64)
				d.Total = time.Duration(us) * time.Microsecond
			}
		}
	}
	if !found {
		return nil
	}
	return &p
}

func readUint(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// readKV reads a "key value" per line file.
func readKV(file string) (map[string]uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out, nil
}
