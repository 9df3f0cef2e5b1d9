package initproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Kind says what a message is. Every kind the parent, the init and the
// exec stage exchange is declared here; the package documentation tells
// who sends each one, with what, and in which order. Send and Recv refuse
// a kind they do not know.
type Kind string

// The message kinds. "P" is the parent (or a client attached through the
// container's control socket), "I" the container's init, "S" an exec
// stage.
const (
	// TypeConfig carries a configuration, as a raw datagram in the
	// receiver's own codec (SendRaw). P->I: the init's config, with the
	// descriptors it needs (a spare's stdio, idmapped mount trees, the
	// container's cgroup.procs files). I->S: the spec of the one process
	// the stage starts.
	TypeConfig Kind = "config"
	// TypeReady says the sender waits. I->P: a spare init is done
	// starting and waits for its config. S->I: a held process (Create)
	// waits before execve for TypeStart.
	TypeReady Kind = "ready"
	// TypeStarted says a process has execve()d. I->P, with ID and the
	// process's pid (credentials or a pidfd: Received.PidOf).
	TypeStarted Kind = "started"
	// TypeCreated says the main process waits before execve (Create).
	// I->P, with its pid as TypeStarted.
	TypeCreated Kind = "created"
	// TypeError reports a failure; Error says which step failed. I->P
	// (with the ID of the process it concerns), S->I.
	TypeError Kind = "error"
	// TypeExit says a process ended; Exit says how. I->P, with ID.
	TypeExit Kind = "exit"
	// TypePTY hands over a terminal's master side, the one descriptor
	// beside it. I->P (with ID), S->I.
	TypePTY Kind = "pty"
	// TypeExec asks for a new process. P->I, with a fresh ID, the JSON
	// payload of the process (child.ExecRequest) and its descriptors:
	// stdio (or none with a terminal), then its extra files.
	TypeExec Kind = "exec"
	// TypeSignal sends Signal to a process: ID 0 the main process, ID n
	// a process the same connection started, ID -1 every process of
	// the container. P->I.
	TypeSignal Kind = "signal"
	// TypeStart lets a waiting process go on to execve. P->I: release
	// the created container's main process (the payload is the state
	// its startContainer hooks read). I->S: release a held stage. S->I:
	// the stage is about to execve (after it, the socket's end of file
	// means success).
	TypeStart Kind = "start"
	// TypeControl hands the parent a new control socket made in the
	// init's network namespace, the one descriptor beside it: the
	// parent switches to it (CRIU can dump only sockets of the dumped
	// namespaces). I->P.
	TypeControl Kind = "control"
	// TypeSeccomp hands over a process's seccomp user-notification
	// listener, the one descriptor beside it, for the agent an OCI
	// runtime sends it to (linux.seccomp.listenerPath). S->I, then I->P
	// with ID, before the process is reported created or started.
	TypeSeccomp Kind = "seccomp"
)

// Kinds lists every message kind.
func Kinds() []Kind {
	return []Kind{TypeConfig, TypeReady, TypeStarted, TypeCreated, TypeError, TypeExit,
		TypePTY, TypeExec, TypeSignal, TypeStart, TypeControl, TypeSeccomp}
}

// Known reports whether k is one of Kinds.
func (k Kind) Known() bool {
	switch k {
	case TypeConfig, TypeReady, TypeStarted, TypeCreated, TypeError, TypeExit,
		TypePTY, TypeExec, TypeSignal, TypeStart, TypeControl, TypeSeccomp:
		return true
	}
	return false
}

// maxMessage bounds one datagram. Configs with a compiled seccomp program
// are tens of kilobytes; 4 MiB leaves room for very large mount lists.
const maxMessage = 4 << 20

// Message is the envelope of every datagram.
type Message struct {
	Type Kind `json:"type"`
	// ID names the process a message is about: 0 is the container's main
	// process, higher numbers are processes started by Exec (numbered
	// by each connection for itself), -1 all of them (TypeSignal).
	ID int `json:"id,omitempty"`
	// Payload is a kind-specific JSON document (TypeExec, TypeStart).
	Payload json.RawMessage `json:"payload,omitempty"`
	// Error describes a failure (TypeError).
	Error *ErrorInfo `json:"error,omitempty"`
	// Exit describes how a process ended (TypeExit).
	Exit *ExitInfo `json:"exit,omitempty"`
	// Signal is a signal number (TypeSignal).
	Signal int `json:"signal,omitempty"`
	// Pid is a pid in the sender's pid namespace (informational; the
	// receiver should prefer the translated credentials pid).
	Pid int `json:"pid,omitempty"`
	// PidFD says that the last passed descriptor is a pidfd of the
	// process the message is about (see SendAs); Recv takes it off
	// Files and puts its pid into Cred.
	PidFD bool `json:"pidfd,omitempty"`
}

// check refuses a message that is not one of the protocol's: an unknown
// kind, or a failure or exit report without what it reports. Both ends
// apply it (Send and Recv).
func (m *Message) check() error {
	switch {
	case !m.Type.Known():
		return fmt.Errorf("initproto: unknown message kind %q", m.Type)
	case m.Type == TypeError && m.Error == nil:
		return errors.New("initproto: error message without an error")
	case m.Type == TypeExit && m.Exit == nil:
		return errors.New("initproto: exit message without an exit status")
	}
	return nil
}

// ErrorInfo is the wire form of a failed step (a *steperr.Error): the
// step, the path it worked on, the cause's text and its errno. StepError
// turns it back into the error; InfoOf makes it from one.
type ErrorInfo struct {
	Step  string `json:"step"`
	Path  string `json:"path,omitempty"`
	Errno int    `json:"errno,omitempty"`
	Msg   string `json:"msg,omitempty"`
}

// ExitInfo is how a process ended: a code, or the signal that killed it.
type ExitInfo struct {
	Code   int  `json:"code"`
	Signal int  `json:"signal,omitempty"`
	Core   bool `json:"core,omitempty"`
}

// FromWaitStatus converts a wait status.
func FromWaitStatus(ws unix.WaitStatus) *ExitInfo {
	if ws.Signaled() {
		return &ExitInfo{Code: 128 + int(ws.Signal()), Signal: int(ws.Signal()), Core: ws.CoreDump()}
	}
	return &ExitInfo{Code: ws.ExitStatus()}
}

// Encode marshals v as a payload.
func Encode(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Decode unmarshals a payload.
func Decode(p json.RawMessage, v any) error {
	if len(p) == 0 {
		return errors.New("initproto: empty payload")
	}
	return json.Unmarshal(p, v)
}

// appendJSON appends m as encoding/json would write it, without its
// reflection: a fresh process (a container's init) pays a good part of a
// millisecond for json.Marshal's first Message.
func (m *Message) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, string(m.Type))
	b = appendIntField(b, `,"id":`, int64(m.ID))
	if len(m.Payload) > 0 {
		b = append(append(b, `,"payload":`...), m.Payload...)
	}
	if e := m.Error; e != nil {
		b = appendJSONString(append(b, `,"error":{"step":`...), e.Step)
		if e.Path != "" {
			b = appendJSONString(append(b, `,"path":`...), e.Path)
		}
		b = appendIntField(b, `,"errno":`, int64(e.Errno))
		if e.Msg != "" {
			b = appendJSONString(append(b, `,"msg":`...), e.Msg)
		}
		b = append(b, '}')
	}
	if x := m.Exit; x != nil {
		b = strconv.AppendInt(append(b, `,"exit":{"code":`...), int64(x.Code), 10)
		b = appendIntField(b, `,"signal":`, int64(x.Signal))
		if x.Core {
			b = append(b, `,"core":true`...)
		}
		b = append(b, '}')
	}
	b = appendIntField(b, `,"signal":`, int64(m.Signal))
	b = appendIntField(b, `,"pid":`, int64(m.Pid))
	if m.PidFD {
		b = append(b, `,"pidfd":true`...)
	}
	return append(b, '}')
}

// appendIntField appends key (with its comma and colon) and v unless v is
// zero (omitempty).
func appendIntField(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), v, 10)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}
