package oci

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openvessel/vessel"
)

func TestStoreLifecycle(t *testing.T) {
	st, err := NewStore(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock("c1"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Lock of a missing container: %v", err)
	}
	l, err := st.Create("c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create("c1"); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create: %v", err)
	}
	// Created but not saved yet: a bare record.
	r, err := st.Load("c1")
	if err != nil || r.ID != "c1" || r.Config != nil {
		t.Fatalf("Load before Save: %+v, %v", r, err)
	}
	rec := &Record{ID: "c1", Bundle: "/b", Created: time.Now().UTC().Round(0), Config: vessel.NewConfig().WithHostname("h"),
		Init: Process{Pid: 1, Start: 2}, Cgroup: vessel.CgroupConfig{Group: "g", Name: "n"}}
	if err := st.Save(rec); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	l.Unlock() // twice is fine
	got, err := st.Load("c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Bundle != "/b" || got.Init != rec.Init || got.Config.Hostname != "h" || got.Cgroup != rec.Cgroup || !got.Created.Equal(rec.Created) {
		t.Errorf("Load: %+v", got)
	}
	entries, _ := os.ReadDir(st.Dir("c1"))
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".tmp" {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	if _, err := st.Create("c2"); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(st.Root, "not-a-container"), 0o700)
	ids, err := st.List()
	if err != nil || len(ids) != 2 || ids[0] != "c1" || ids[1] != "c2" {
		t.Errorf("List: %v, %v", ids, err)
	}
	for _, id := range []string{"c1", "c2"} {
		if err := st.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Load("c1"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Load after Remove: %v", err)
	}
	ids, _ = st.List()
	if len(ids) != 0 {
		t.Errorf("List after Remove: %v", ids)
	}
}

func TestStoreRejectsBadIDs(t *testing.T) {
	st, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../x", "a/b", ".hidden", string(make([]byte, 200))} {
		if _, err := st.Create(id); err == nil {
			t.Errorf("Create(%q) accepted", id)
		}
	}
	def := &Store{Root: DefaultRoot}
	if err := def.CheckID("storage"); err == nil {
		t.Error(`"storage" accepted in the default root, where the library keeps its storage state`)
	}
	if err := st.CheckID("storage"); err != nil {
		t.Errorf(`"storage" refused in another root: %v`, err)
	}
}

// TestStoreLockSerialises has many goroutines increment a counter in the
// record under the lock: none of the increments may be lost.
func TestStoreLockSerialises(t *testing.T) {
	st, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.Create("c")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(&Record{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := st.Lock("c")
			if err != nil {
				errs <- err
				return
			}
			defer l.Unlock()
			r, err := st.Load("c")
			if err != nil {
				errs <- err
				return
			}
			r.Owner++
			errs <- st.Save(r)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	r, err := st.Load("c")
	if err != nil || r.Owner != n {
		t.Errorf("after %d locked increments: %d, %v", n, r.Owner, err)
	}
}

// TestStoreLockAfterRemove: a command waiting for the lock of a container
// that is deleted meanwhile finds it gone.
func TestStoreLockAfterRemove(t *testing.T) {
	st, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.Create("c")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		l2, err := st.Lock("c")
		if err == nil {
			l2.Unlock()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := st.Remove("c"); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotExist) {
			t.Errorf("Lock of a container removed while waiting: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock still waiting after the container was removed")
	}
}

func TestProcessAlive(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := ProcessOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Alive() || p.Start == 0 {
		t.Fatalf("a running process: %+v alive=%v", p, p.Alive())
	}
	if (Process{Pid: p.Pid, Start: p.Start + 1}).Alive() {
		t.Error("a process with another start time (a reused pid) counts as alive")
	}
	cmd.Process.Kill()
	// Until reaped it is a zombie: not alive either.
	time.Sleep(50 * time.Millisecond)
	if p.Alive() {
		t.Error("a zombie counts as alive")
	}
	cmd.Wait()
	if p.Alive() {
		t.Error("a reaped process counts as alive")
	}
	if (Process{}).Alive() {
		t.Error("pid 0 counts as alive")
	}
	if _, err := ProcessStartTime(1 << 30); err == nil {
		t.Error("start time of a missing process")
	}
	self, err := ProcessStartTime(os.Getpid())
	if err != nil || self == 0 {
		t.Errorf("own start time: %d, %v", self, err)
	}
}
