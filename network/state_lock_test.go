package network

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestStateLockLeavesNothing: an exclusive holder that leaves only the
// lock removes it and the directory; a holder that leaves state does not;
// a waiter that got the lock of a file removed meanwhile takes the new
// one, so two holders never overlap.
func TestStateLockLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("state directory left after the last exclusive unlock: %v", err)
	}

	l, err := lockState(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "state.json"), []byte("{}"), 0o600)
	l.unlock()
	if _, err := os.Stat(filepath.Join(dir, "lock")); err != nil {
		t.Fatalf("lock removed while state is kept: %v", err)
	}
	os.Remove(filepath.Join(dir, "state.json"))

	// Many holders in turn, each removing everything at unlock: at most
	// one at a time.
	var mu sync.Mutex
	inside := 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				unlock, err := LockDir(dir)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				n := inside
				mu.Unlock()
				if n != 1 {
					t.Errorf("%d holders at once", n)
				}
				time.Sleep(50 * time.Microsecond)
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		}()
	}
	wg.Wait()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("state directory left after the holders: %v", err)
	}
}
