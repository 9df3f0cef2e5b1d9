package security

import (
	"encoding/json"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCallerPermittedMatchesCapget: the set read from /proc/self/status is
// the one capget(2) reports.
func TestCallerPermittedMatchesCapget(t *testing.T) {
	got, err := CallerPermitted()
	if err != nil {
		t.Fatal(err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	if want := uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted); got != want {
		t.Errorf("CallerPermitted = %#x, capget says %#x", got, want)
	}
}

func TestLimitCapabilities(t *testing.T) {
	all := ^uint64(0)
	p := &Prepared{NoNewPrivileges: true, Capabilities: &CapSets{Bounding: all, Effective: all, Permitted: all, Inheritable: 0b11, Ambient: 0b1, LastCap: 40}}
	got := p.LimitCapabilities(0b10)
	want := CapSets{Bounding: 0b10, Effective: 0b10, Permitted: 0b10, Inheritable: 0b10, Ambient: 0, LastCap: 40}
	if *got.Capabilities != want || !got.NoNewPrivileges {
		t.Errorf("LimitCapabilities = %+v, want %+v", *got.Capabilities, want)
	}
	if p.Capabilities.Bounding != all {
		t.Error("LimitCapabilities changed its receiver")
	}
	if q := (&Prepared{}); q.LimitCapabilities(0) != q {
		t.Error("a Prepared without capability sets was copied or changed")
	}
}

func TestPrepareDefaultIsCompiledOnce(t *testing.T) {
	a, err := PrepareDefault()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := PrepareDefault()
	if a != b {
		t.Error("PrepareDefault compiled the profile again")
	}
	fresh, err := DefaultProfile().Prepare()
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jf, _ := json.Marshal(fresh)
	if string(ja) != string(jf) {
		t.Error("PrepareDefault differs from DefaultProfile().Prepare()")
	}
}

func TestLandlockWithContainerFS(t *testing.T) {
	base := Landlock{Enabled: true, BindTCP: []uint16{80}}
	mounts := []MountAccess{{Destination: "/data", ReadOnly: true}, {Destination: "/scratch"}}
	for _, c := range []struct {
		name string
		fs   ContainerFS
		want Landlock
	}{
		{"writable root", ContainerFS{RootWritable: true, Mounts: mounts},
			Landlock{ReadWrite: []string{"/"}, ReadExec: []string{"/data"}}},
		{"read-only directory root", ContainerFS{Mounts: mounts},
			Landlock{ReadExec: []string{"/", "/data"}, ReadWrite: []string{"/dev", "/proc", "/scratch"}}},
		{"host root", ContainerFS{HostRoot: true},
			Landlock{ReadExec: []string{"/"}, ReadWrite: []string{"/dev", "/proc", "/tmp", "/run"}}},
	} {
		got := base.WithContainerFS(c.fs)
		c.want.Enabled, c.want.BindTCP = true, []uint16{80}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		if !got.HasPaths() {
			t.Errorf("%s: HasPaths false", c.name)
		}
	}
	if base.HasPaths() || len(base.ReadExec) != 0 {
		t.Errorf("WithContainerFS changed its receiver or HasPaths is wrong: %+v", base)
	}
}
