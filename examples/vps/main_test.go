package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/openvessel/vessel/examples/internal/exampletest"
	"github.com/openvessel/vessel/internal/testutil"
)

var vpsBin string // the built example

func TestMain(m *testing.M) { exampletest.Main(m, "vps", &vpsBin) }

// freePorts finds n consecutive TCP ports on 127.0.0.1 that nothing
// listens on.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + rand.IntN(30000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports on 127.0.0.1")
	return 0
}

func nftTableExists(t *testing.T, name string) bool {
	t.Helper()
	conn, err := nftables.New()
	if err != nil {
		t.Fatalf("nftables: %v", err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatalf("list nftables tables: %v", err)
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true
		}
	}
	return false
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// TestVPS starts two VPSes through the CLI, fetches each one's page
// through its published port, reads their stats, stops them and checks
// that nothing is left: no bridge, veth, nftables table, cgroup, mount,
// state directory or server process.
func TestVPS(t *testing.T) {
	tmp := t.TempDir()
	bin := vpsBin
	pid := os.Getpid()
	prefix := fmt.Sprintf("vpst%d", pid)
	bridge := fmt.Sprintf("vpt%d", pid%1000000)
	table := fmt.Sprintf("vessel_vpst%d", pid)
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.213.%d.0/24", 20+pid%200))
	state := filepath.Join(tmp, "state")
	port := freePorts(t, 2)
	if linkExists(bridge) || nftTableExists(t, table) {
		t.Fatalf("bridge %s or table %s already exists", bridge, table)
	}

	stdout, stderr, code := exampletest.Run(t, bin, "start", "-n", "2", "-state", state, "-prefix", prefix,
		"-port", fmt.Sprint(port), "-bridge", bridge, "-subnet", subnet.String(), "-nft-table", table,
		"-disk", "16M", "-mem", "64M", "-cpus", "0.5", "-cgroup", exampletest.CgroupGroup)
	if code != 0 {
		t.Fatalf("vps start: exit %d\n%s%s", code, stdout, stderr)
	}
	stopped := false
	defer func() {
		if !stopped {
			exampletest.Run(t, bin, "stop", "-state", state)
		}
	}()
	if !strings.Contains(stdout, prefix+"-1") || !strings.Contains(stdout, prefix+"-2") {
		t.Errorf("start did not list the VPSes:\n%s", stdout)
	}

	var list Response
	query(t, bin, state, "list", &list)
	if len(list.VPS) != 2 {
		t.Fatalf("list: %+v", list)
	}
	seen := map[string]bool{}
	for i, v := range list.VPS {
		id := fmt.Sprintf("%s-%d", prefix, i+1)
		addr, err := netip.ParsePrefix(v.Address)
		if v.ID != id || v.Status != "running" || v.Pid <= 0 || err != nil || !subnet.Contains(addr.Addr()) ||
			v.Port != fmt.Sprintf("127.0.0.1:%d", port+i) || v.QuotaMethod == "" || v.HostInterface == "" {
			t.Errorf("list entry %d: %+v", i, v)
		}
		if seen[v.Address] {
			t.Errorf("address %s given twice", v.Address)
		}
		seen[v.Address] = true
		if !linkExists(v.HostInterface) {
			t.Errorf("host interface %s of %s missing", v.HostInterface, v.ID)
		}
		if err := syscall.Kill(v.Pid, 0); err != nil {
			t.Errorf("pid %d of %s: %v", v.Pid, v.ID, err)
		}
	}
	if !linkExists(bridge) || !nftTableExists(t, table) {
		t.Errorf("bridge %s or nftables table %s missing while the VPSes run", bridge, table)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	for i := range list.VPS {
		url := fmt.Sprintf("http://127.0.0.1:%d/", port+i)
		var body []byte
		var err error
		// httpd is exec'd right after start; give it a moment to listen.
		for try := 0; try < 50; try++ {
			var resp *http.Response
			if resp, err = client.Get(url); err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		want := fmt.Sprintf("hello from %s-%d", prefix, i+1)
		if err != nil || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %v %q, want %q", url, err, body, want)
		}
	}

	var stats Response
	query(t, bin, state, "stats", &stats)
	if len(stats.Stats) != 2 {
		t.Fatalf("stats: %+v", stats)
	}
	for _, s := range stats.Stats {
		if s.Error != "" {
			t.Errorf("stats of %s: %s", s.ID, s.Error)
			continue
		}
		if s.Memory == 0 || s.MemoryLimit != 64<<20 || s.Pids == 0 || s.CPU <= 0 || s.CPULimit != 0.5 {
			t.Errorf("stats of %s: %+v", s.ID, s)
		}
		// The writable root is the 16 MiB quota; the page used a little.
		if s.DiskSize < 15<<20 || s.DiskSize > 17<<20 || s.DiskUsed == 0 {
			t.Errorf("disk of %s: used %d of %d, want a 16 MiB root in use", s.ID, s.DiskUsed, s.DiskSize)
		}
	}
	_, stderr, code = exampletest.Run(t, bin, "stats", "-state", state)
	if code != 0 {
		t.Errorf("vps stats (table): exit %d: %s", code, stderr)
	}

	// Beancounters: each VPS's finite resources, with the limits of its
	// plan, and the table.
	var bc Response
	query(t, bin, state, "beancounters", &bc)
	if len(bc.Beancounters) != 2 {
		t.Fatalf("beancounters: %+v", bc)
	}
	for _, b := range bc.Beancounters {
		if b.Error != "" || b.Usage == nil {
			t.Errorf("beancounters of %s: %s", b.ID, b.Error)
			continue
		}
		if len(b.Usage.Resources) < 20 {
			t.Errorf("beancounters of %s: %d resources, want 20 or more", b.ID, len(b.Usage.Resources))
		}
		for name, limit := range map[string]uint64{"numproc": 128, "physpages": 64 << 20, "numpty": 16, "devshm": 16 << 20,
			"sysvshm": 32 << 20, "numfile": 4096, "diskspace": 16 << 20, "diskinodes": 4096} {
			r, ok := b.Usage.Get(name)
			if !ok || r.Limit != limit {
				t.Errorf("%s of %s: %+v, want limit %d", name, b.ID, r, limit)
			}
		}
		if r, _ := b.Usage.Get("numtcpsock"); r.Held == 0 {
			t.Errorf("numtcpsock of %s: %+v, want httpd's listening socket", b.ID, r)
		}
		if r, _ := b.Usage.Get("netrxbytes"); r.Held == 0 {
			t.Errorf("netrxbytes of %s: %+v, want the page's request", b.ID, r)
		}
	}
	out, stderr, code := exampletest.Run(t, bin, "beancounters", "-state", state)
	if code != 0 || !strings.Contains(out, "numiptent") || !strings.Contains(out, "failcnt") {
		t.Errorf("vps beancounters (table): exit %d: %s\n%s", code, stderr, out)
	}
	t.Logf("vps beancounters:\n%s", out)

	var stop Response
	query(t, bin, state, "stop", &stop)
	stopped = true
	if len(stop.Stopped) != 2 {
		t.Errorf("stop: %+v", stop)
	}
	if err := syscall.Kill(stop.ServerPid, 0); err == nil {
		t.Errorf("server pid %d still runs after stop", stop.ServerPid)
	}
	for _, v := range list.VPS {
		if linkExists(v.HostInterface) {
			t.Errorf("veth %s left", v.HostInterface)
		}
		if err := syscall.Kill(v.Pid, 0); err == nil {
			t.Errorf("pid %d of %s still runs", v.Pid, v.ID)
		}
		exampletest.AssertNoLeftovers(t, v.ID)
	}
	if linkExists(bridge) {
		t.Errorf("bridge %s left", bridge)
	}
	if nftTableExists(t, table) {
		t.Errorf("nftables table %s left", table)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("state directory %s left", state)
	}
	if _, _, code := exampletest.Run(t, bin, "list", "-state", state); code == 0 {
		t.Error("list succeeded after stop")
	}
}

func query(t *testing.T, bin, state, cmd string, into *Response) {
	t.Helper()
	stdout, stderr, code := exampletest.Run(t, bin, cmd, "-state", state, "-json")
	if code != 0 {
		t.Fatalf("vps %s: exit %d: %s", cmd, code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), into); err != nil {
		t.Fatalf("vps %s -json: %v\n%s", cmd, err, stdout)
	}
}

func TestBadFlags(t *testing.T) {
	tmp := t.TempDir()
	bin := vpsBin
	for _, args := range [][]string{
		{"start", "-state", tmp + "/s", "-n", "0"},
		{"start", "-state", tmp + "/s", "-disk", "lots"},
		{"serve", "-state", tmp + "/s", "-port", "70000"},
		{"start", "-state", tmp + "/s", "-subnet", "10.0.0.0/33"},
	} {
		_, stderr, code := exampletest.Run(t, bin, args...)
		if code == 0 || !strings.Contains(stderr, args[3]) {
			t.Errorf("vps %v: exit %d, stderr %q: want a failure naming %s", args, code, stderr, args[3])
		}
	}
	if _, err := os.Stat(tmp + "/s"); err == nil {
		t.Error("bad flags created the state directory")
	}
	if _, stderr, code := exampletest.Run(t, bin, "list", "-state", tmp+"/none"); code == 0 || !strings.Contains(stderr, "no server") {
		t.Errorf("list without a server: exit %d, %q", code, stderr)
	}
}

// TestVPSBoot boots two Debian system containers (systemd as PID 1, a
// debootstrap tree shared read-only under a layer of each one's own),
// each with its own address, quota and beancounters; reaches the sshd
// systemd started in each through its published port; reads stats and
// the beancounters table; and stops them (systemd halts on its stop
// signal) leaving nothing behind.
func TestVPSBoot(t *testing.T) {
	root := testutil.DebianSystemRoot(t)
	tmp := t.TempDir()
	bin := vpsBin
	pid := os.Getpid()
	prefix := fmt.Sprintf("vpsb%d", pid)
	bridge := fmt.Sprintf("vpb%d", pid%1000000)
	table := fmt.Sprintf("vessel_vpsb%d", pid)
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.213.%d.0/24", 20+(pid+100)%200))
	state := filepath.Join(tmp, "state")
	port := freePorts(t, 2)

	start := time.Now()
	stdout, stderr, code := exampletest.Run(t, bin, "start", "-n", "2", "-boot", root, "-state", state, "-prefix", prefix,
		"-port", fmt.Sprint(port), "-bridge", bridge, "-subnet", subnet.String(), "-nft-table", table,
		"-disk", "64M", "-mem", "256M", "-cpus", "1", "-cgroup", exampletest.CgroupGroup)
	if code != 0 {
		t.Fatalf("vps start -boot: exit %d\n%s%s", code, stdout, stderr)
	}
	stopped := false
	defer func() {
		if !stopped {
			exampletest.Run(t, bin, "stop", "-state", state)
		}
	}()
	var list Response
	query(t, bin, state, "list", &list)
	if len(list.VPS) != 2 {
		t.Fatalf("list: %+v", list)
	}
	for i, v := range list.VPS {
		addr, err := netip.ParsePrefix(v.Address)
		if v.Status != "running" || err != nil || !subnet.Contains(addr.Addr()) || v.QuotaMethod == "" {
			t.Errorf("list entry %d: %+v", i, v)
		}
		// sshd, started by systemd, answers on the VPS's published port.
		var banner string
		for try := 0; try < 100 && !strings.HasPrefix(banner, "SSH-2.0-"); try++ {
			banner = ""
			if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port+i), 2*time.Second); err == nil {
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 64)
				n, _ := conn.Read(b)
				banner = string(b[:n])
				conn.Close()
			}
			if !strings.HasPrefix(banner, "SSH-2.0-") {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !strings.HasPrefix(banner, "SSH-2.0-OpenSSH") {
			t.Errorf("%s: no sshd banner on port %d: %q", v.ID, port+i, banner)
		}
	}
	t.Logf("two Debian VPSes answering on ssh %v after start", time.Since(start).Round(time.Millisecond))

	var bc Response
	query(t, bin, state, "beancounters", &bc)
	for _, b := range bc.Beancounters {
		if b.Usage == nil {
			t.Fatalf("beancounters of %s: %s", b.ID, b.Error)
		}
		tasks, _ := b.Usage.Get("numproc")
		mem, _ := b.Usage.Get("physpages")
		disk, _ := b.Usage.Get("diskspace")
		tcp, _ := b.Usage.Get("numtcpsock")
		if tasks.Held < 3 || tasks.Limit != 128 || mem.Limit != 256<<20 || disk.Limit != 64<<20 || tcp.Held == 0 {
			t.Errorf("beancounters of %s: tasks %+v memory %+v disk %+v tcp %+v", b.ID, tasks, mem, disk, tcp)
		}
		t.Logf("%s idle: %.1f MiB, %d tasks", b.ID, float64(mem.Held)/(1<<20), tasks.Held)
	}
	out, _, code := exampletest.Run(t, bin, "beancounters", "-state", state)
	if code != 0 || !strings.Contains(out, prefix+"-2") {
		t.Errorf("vps beancounters: exit %d\n%s", code, out)
	}
	if _, stderr, code := exampletest.Run(t, bin, "stats", "-state", state); code != 0 {
		t.Errorf("vps stats: exit %d: %s", code, stderr)
	}

	stopAt := time.Now()
	var stop Response
	query(t, bin, state, "stop", &stop)
	stopped = true
	t.Logf("stop took %v", time.Since(stopAt).Round(time.Millisecond))
	if time.Since(stopAt) > 20*time.Second || len(stop.Stopped) != 2 {
		t.Errorf("stop: %+v after %v", stop, time.Since(stopAt))
	}
	for _, v := range list.VPS {
		if linkExists(v.HostInterface) {
			t.Errorf("veth %s left", v.HostInterface)
		}
		exampletest.AssertNoLeftovers(t, v.ID)
	}
	if linkExists(bridge) || nftTableExists(t, table) {
		t.Errorf("bridge %s or nftables table %s left", bridge, table)
	}
}
