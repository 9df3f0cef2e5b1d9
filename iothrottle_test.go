package vessel_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/limits"
)

// loopDevice attaches a sparse file of size bytes to a free loop device
// and detaches it when the test ends.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	backing, err := os.CreateTemp(t.TempDir(), "loop-*.img")
	if err != nil {
		t.Fatal(err)
	}
	if err := backing.Truncate(size); err != nil {
		t.Fatal(err)
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/dev/loop%d", n)
	dev, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(backing.Fd())); err != nil {
		dev.Close()
		t.Fatal(err)
	}
	backing.Close()
	t.Cleanup(func() {
		unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
		dev.Close()
	})
	return path
}

// TestIOThrottleLoopDevice writes with O_DIRECT to a loop device from a
// container limited to 4 MiB/s of writes on it: the rate stays near the
// limit, while the same write without a limit is much faster.
func TestIOThrottleLoopDevice(t *testing.T) {
	dev := loopDevice(t, 64<<20)
	rate := func(limit bool) float64 {
		cfg := newConfig().WithPrivileged(true)
		if limit {
			r, err := limits.ParseDeviceRate(dev + ":4M")
			if err != nil {
				t.Fatal(err)
			}
			cfg.WithResources(&limits.Resources{IO: &limits.IO{WriteBps: []limits.DeviceRate{r}}})
		}
		start := time.Now()
		out, err := run(t, cfg, "dd", "if=/dev/zero", "of="+dev, "bs=1M", "count=16", "oflag=direct")
		if err != nil {
			t.Fatalf("dd: %v\n%s", err, out)
		}
		secs := time.Since(start).Seconds()
		if !strings.Contains(out, "16 records out") && !strings.Contains(out, "16+0 records out") {
			t.Fatalf("dd wrote less than asked:\n%s", out)
		}
		return 16 / secs
	}
	free := rate(false)
	limited := rate(true)
	t.Logf("unlimited %.1f MiB/s, limited to 4 MiB/s: %.1f MiB/s", free, limited)
	// A wide band: the throttle allows a short burst, and a slow machine
	// may be slower than the limit anyway.
	if limited > 4*1.5 {
		t.Fatalf("write rate %.1f MiB/s over a 4 MiB/s limit", limited)
	}
	if free < limited*2 {
		t.Fatalf("unlimited rate %.1f MiB/s is not clearly above the limited %.1f: the test device is too slow to show the limit", free, limited)
	}
	_ = strconv.Itoa
}
