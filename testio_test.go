package vessel_test

import (
	"bytes"
	"io"
	"os"
	"sync"
	"syscall"
)

func ioPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fileStat is the inode of a file, for namespace comparisons.
type fileStat struct{ ino uint64 }

func (f *fileStat) of(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.ino = st.Ino
		return true
	}
	return false
}
