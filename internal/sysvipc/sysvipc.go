package sysvipc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/namespaces"
)

// Clear removes every System V shared memory segment, message queue and
// semaphore set of the IPC namespace of process pid. It enters that
// namespace on a locked thread of its own (namespaces.Do) and leaves the
// caller's untouched.
func Clear(pid int) error {
	return namespaces.Do(namespaces.IPC, "/proc/"+strconv.Itoa(pid)+"/ns/ipc", func() error {
		if Empty() {
			return nil
		}
		var errs []error
		for _, kind := range []struct {
			file string
			rm   func(id int) error
		}{
			{"shm", func(id int) error { _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); return err }},
			{"msg", func(id int) error {
				_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0)
				return errnoErr(e)
			}},
			{"sem", func(id int) error {
				_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0)
				return errnoErr(e)
			}},
		} {
			ids, err := sysvIDs("/proc/sysvipc/" + kind.file)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, id := range ids {
				if err := kind.rm(id); err != nil && err != unix.EINVAL && err != unix.EIDRM {
					errs = append(errs, fmt.Errorf("%s %d: %w", kind.file, id, err))
				}
			}
		}
		return errors.Join(errs...)
	})
}

// The *_INFO commands of shmctl, msgctl and semctl (linux/shm.h, msg.h,
// sem.h): counts for the caller's IPC namespace.
const (
	ipcShmInfo = 14
	ipcMsgInfo = 12
	ipcSemInfo = 19
)

// Empty reports whether the calling thread's IPC namespace holds no
// shared memory segment, message queue or semaphore set, from three system
// calls instead of reading the /proc/sysvipc tables; false when unsure.
func Empty() bool {
	var shm struct {
		usedIDs int32 // struct shm_info
		_       [64]byte
	}
	if _, _, e := unix.Syscall(unix.SYS_SHMCTL, 0, ipcShmInfo, uintptr(unsafe.Pointer(&shm))); e != 0 || shm.usedIDs != 0 {
		return false
	}
	var msg struct {
		msgpool int32 // struct msginfo: with MSG_INFO, the queues that exist
		_       [64]byte
	}
	if _, _, e := unix.Syscall(unix.SYS_MSGCTL, 0, ipcMsgInfo, uintptr(unsafe.Pointer(&msg))); e != 0 || msg.msgpool != 0 {
		return false
	}
	var sem struct {
		_      [7]int32 // struct seminfo: semmap ... semume
		semusz int32    // with SEM_INFO, the sets that exist
		_      [64]byte
	}
	// semctl's fourth argument is a union whose __buf points to the
	// struct.
	if _, _, e := unix.Syscall6(unix.SYS_SEMCTL, 0, 0, ipcSemInfo, uintptr(unsafe.Pointer(&sem)), 0, 0); e != 0 || sem.semusz != 0 {
		return false
	}
	return true
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// sysvIDs reads the ids column of a /proc/sysvipc table (the reading
// thread's IPC namespace).
func sysvIDs(file string) ([]int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) == 0 {
		return nil, nil
	}
	head := strings.Fields(lines[0])
	col := -1
	for i, h := range head {
		if h == "shmid" || h == "msqid" || h == "semid" {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("%s: no id column", file)
	}
	var ids []int
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		if id, err := strconv.Atoi(f[col]); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
