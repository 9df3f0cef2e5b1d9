package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/testutil"
)

// notification is one seccomp user notification the test agent answered.
type notification struct {
	pid uint32
	nr  int32
}

// notifyAgent is a seccomp notify agent as runtime-spec describes one: it
// listens on a unix socket, receives the container process state with the
// listener beside it, and answers each notified call with a success that
// does nothing (val 0, error 0). It answers until the listener reports that
// every process of the filter is gone or the test ends.
type notifyAgent struct {
	states  chan specs.ContainerProcessState
	answers chan notification
	errs    chan error
}

func startNotifyAgent(t *testing.T, path string) *notifyAgent {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	a := &notifyAgent{states: make(chan specs.ContainerProcessState, 4), answers: make(chan notification, 16), errs: make(chan error, 4)}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	serve := func(listener int) {
		defer unix.Close(listener)
		for {
			select {
			case <-done:
				return
			default:
			}
			pfd := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
				a.errs <- err
				return
			}
			if pfd[0].Revents&unix.POLLHUP != 0 {
				return // no process uses the filter any more
			}
			if pfd[0].Revents&unix.POLLIN == 0 {
				continue
			}
			// struct seccomp_notif: id u64, pid u32, flags u32, then
			// struct seccomp_data: nr s32, arch u32, ip u64, args[6] u64.
			var req [80]byte
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
				if e == unix.ENOENT || e == unix.EINTR {
					continue // the caller went away meanwhile
				}
				a.errs <- e
				return
			}
			// struct seccomp_notif_resp: id u64, val s64, error s32, flags u32.
			var resp [24]byte
			copy(resp[0:8], req[0:8])
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp[0])))
			if e != 0 && e != unix.ENOENT {
				a.errs <- e
				return
			}
			a.answers <- notification{pid: binary.LittleEndian.Uint32(req[8:12]), nr: int32(binary.LittleEndian.Uint32(req[16:20]))}
		}
	}
	go func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return // closed at the end of the test
			}
			buf, oob := make([]byte, 64<<10), make([]byte, unix.CmsgSpace(4*8))
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			conn.Close()
			if err != nil {
				a.errs <- err
				return
			}
			var st specs.ContainerProcessState
			if err := json.Unmarshal(buf[:n], &st); err != nil {
				a.errs <- err
				return
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil || len(msgs) != 1 {
				a.errs <- fmt.Errorf("control messages %v: %v", msgs, err)
				return
			}
			fds, err := unix.ParseUnixRights(&msgs[0])
			if err != nil || len(fds) != 1 {
				a.errs <- fmt.Errorf("descriptors %v: %v", fds, err)
				return
			}
			a.states <- st
			go serve(fds[0])
		}
	}()
	return a
}

// TestOCISeccompListener: a profile that notifies mkdir with a
// linux.seccomp.listenerPath hands the notify listener to the agent there
// during create, with the container process state (runtime-spec's
// ContainerProcessState) as runc does; the agent's answer is what mkdir
// returns inside (success, yet no directory is made).
func TestOCISeccompListener(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := startNotifyAgent(t, sock)
	var rootDir string
	b := bundle(t, "notify", []string{"sh", "-c", "mkdir /made; echo rc=$? >/out; [ -d /made ] && echo made >>/out || echo absent >>/out"}, func(s *specs.Spec) {
		rootDir = s.Root.Path
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction:    specs.ActAllow,
			ListenerPath:     sock,
			ListenerMetadata: "test-metadata",
			Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
		}
		s.Annotations = map[string]string{"org.example.test": "notify"}
	})
	r := cli(t, root, "create", "--bundle", b, "notify")
	require.Equal(t, 0, r.code, "create: %s", r.stderr)
	st := agentState(t, agent)
	created := state(t, root, "notify")
	assert.Equal(t, []string{specs.SeccompFdName}, st.Fds)
	assert.Equal(t, "test-metadata", st.Metadata)
	assert.Equal(t, created.Pid, st.Pid)
	assert.Equal(t, specs.Version, st.Version)
	assert.Equal(t, "notify", st.State.ID)
	assert.Equal(t, specs.StateCreating, st.State.Status)
	assert.Equal(t, created.Pid, st.State.Pid)
	assert.Equal(t, b, st.State.Bundle)
	assert.Equal(t, "notify", st.State.Annotations["org.example.test"])

	rec := record(t, root, "notify")
	cli(t, root, "start", "notify").ok(t, "start")
	waitStatus(t, root, "notify", "stopped")
	out, err := os.ReadFile(filepath.Join(rootDir, "out"))
	require.NoError(t, err)
	assert.Equal(t, "rc=0\nabsent\n", string(out), "mkdir answered by the agent")
	select {
	case n := <-agent.answers:
		assert.Contains(t, []int32{syscall.SYS_MKDIR, syscall.SYS_MKDIRAT}, n.nr)
	case err := <-agent.errs:
		t.Fatalf("agent: %v", err)
	default:
		t.Fatal("the agent answered no notification")
	}
	cli(t, root, "delete", "notify").ok(t, "delete")
	assertGone(t, root, rec)

	// An exec'd process's listener goes to the agent too (as under runc),
	// with its own pid, the container's state beside it.
	var rootDir2 string
	b = bundle(t, "notify2", []string{"sleep", "100"}, func(s *specs.Spec) {
		rootDir2 = s.Root.Path
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: sock,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}}}
	})
	cli(t, root, "run", "--detach", "--bundle", b, "notify2").ok(t, "run --detach")
	main := agentState(t, agent)
	assert.Equal(t, "notify2", main.State.ID)
	r = cli(t, root, "exec", "notify2", "sh", "-c", "mkdir /made; echo rc=$?; [ -d /made ] && echo made || echo absent")
	require.Equal(t, 0, r.code, "exec: %s", r.stderr)
	assert.Equal(t, "rc=0\nabsent\n", r.stdout, "mkdir of an exec'd process answered by the agent")
	ex := agentState(t, agent)
	assert.Equal(t, "notify2", ex.State.ID)
	assert.Equal(t, specs.StateRunning, ex.State.Status)
	assert.Equal(t, main.Pid, ex.State.Pid, "the container's pid in the state")
	assert.NotEqual(t, main.Pid, ex.Pid, "the exec'd process's own pid")
	_, err = os.Stat(filepath.Join(rootDir2, "made"))
	assert.True(t, os.IsNotExist(err))
	// exec --detach (conmon's and the shim's): through the stand-in.
	cli(t, root, "exec", "--detach", "notify2", "sh", "-c", "mkdir /made; echo rc=$? >/out").ok(t, "exec --detach")
	ex = agentState(t, agent)
	assert.Equal(t, "notify2", ex.State.ID)
	var out2 []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out2, err = os.ReadFile(filepath.Join(rootDir2, "out")); err == nil && len(out2) > 0 {
			break
		}
	}
	assert.Equal(t, "rc=0\n", string(out2), "mkdir of a detached exec answered by the agent")
	rec = record(t, root, "notify2")
	cli(t, root, "delete", "--force", "notify2").ok(t, "delete")
	assertGone(t, root, rec)

	// No agent at the path: create fails, naming the field, and leaves
	// nothing behind.
	b = bundle(t, "noagent", []string{"true"}, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: sock + ".none",
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}
	})
	r = cli(t, root, "create", "--bundle", b, "noagent")
	assert.NotEqual(t, 0, r.code)
	assert.True(t, strings.Contains(r.stderr, "linux.seccomp.listenerPath"), "stderr: %s", r.stderr)
	_, err = os.Stat(filepath.Join(root, "noagent"))
	assert.True(t, os.IsNotExist(err), "state of a failed create left behind: %v", err)
}

// agentState waits for the next listener the agent gets.
func agentState(t *testing.T, a *notifyAgent) specs.ContainerProcessState {
	t.Helper()
	select {
	case st := <-a.states:
		return st
	case err := <-a.errs:
		t.Fatalf("agent: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the agent got no listener")
	}
	return specs.ContainerProcessState{}
}
