package initproto

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/steperr"
)

// Every kind is known, and the package documentation's table says who
// sends it.
func TestKindsAreDeclaredAndDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	seen := map[Kind]bool{}
	for _, k := range Kinds() {
		assert.True(t, k.Known(), "%q", k)
		assert.False(t, seen[k], "%q listed twice", k)
		seen[k] = true
		assert.Contains(t, string(doc), "//	"+string(k)+" ", "doc.go's table lacks %q", k)
	}
	assert.False(t, Kind("resize").Known())
	assert.False(t, Kind("").Known())
}

// pair is a connected pair of blocking ends, closed when the test ends.
func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, bf, err := Pair()
	require.NoError(t, err)
	b := New(bf)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// Neither end takes what is not a message of the protocol: an unknown
// kind (JSON or raw), a failure report without the failure, an exit
// report without the status. Send refuses to write one; Recv, given one
// anyway, refuses it and closes the descriptors that came along.
func TestMalformedMessagesAreRefused(t *testing.T) {
	a, b := pair(t)
	for _, m := range []*Message{{Type: "resize"}, {Type: TypeError}, {Type: TypeExit}} {
		assert.Error(t, a.Send(m), "Send %+v", m)

		r, w, err := os.Pipe()
		require.NoError(t, err)
		require.NoError(t, a.sendData(m.Type, m.appendJSON(nil), nil, []int{int(w.Fd())}))
		w.Close()
		_, err = b.Recv()
		assert.Error(t, err, "Recv %+v", m)
		// The pipe's write end went with the message and was closed
		// by Recv: its read end sees end of file.
		n, rerr := r.Read(make([]byte, 1))
		assert.Equal(t, 0, n)
		assert.Error(t, rerr)
		r.Close()
	}
	assert.ErrorContains(t, a.SendRaw("nonsense", []byte("x")), "unknown message kind")
	require.NoError(t, a.sendData("nonsense", append([]byte{0, 8}, "nonsensex"...), nil, nil))
	_, err := b.Recv()
	assert.ErrorContains(t, err, "unknown message kind")

	// And takes what they do write.
	require.NoError(t, a.Send(&Message{Type: TypeError, ID: 3, Error: &ErrorInfo{Step: "exec", Path: "/x", Errno: int(syscall.ENOENT)}}))
	got, err := b.Recv()
	require.NoError(t, err)
	assert.Equal(t, TypeError, got.Type)
	assert.Equal(t, 3, got.ID)
	require.NoError(t, a.SendRaw(TypeConfig, []byte("body")))
	got, err = b.Recv()
	require.NoError(t, err)
	assert.Equal(t, TypeConfig, got.Type)
	assert.Equal(t, "body", string(got.Raw))
}

// Expect gives a peer's failure report as the step error it describes.
func TestExpectReturnsTheStepError(t *testing.T) {
	a, b := pair(t)
	require.NoError(t, a.Send(&Message{Type: TypeError, Error: &ErrorInfo{Step: "read config", Msg: "truncated"}}))
	_, err := b.Expect(TypeConfig)
	require.Error(t, err)
	var se *steperr.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "read config", se.Step)
	assert.Equal(t, "read config: truncated", err.Error())
}

// A control message hands the parent a new socket: Rebound switches to
// it and closes the old one; without a socket it keeps the old one.
func TestReboundSwitchesToTheHandedSocket(t *testing.T) {
	parent, initEnd := pair(t)
	mine, theirs, err := Pair()
	require.NoError(t, err)
	defer mine.Close()
	require.NoError(t, initEnd.Send(&Message{Type: TypeControl}, theirs))
	theirs.Close()
	r, err := parent.Recv()
	require.NoError(t, err)
	n, ok := parent.Rebound(r)
	require.True(t, ok)
	defer n.Close()
	require.NoError(t, mine.Send(&Message{Type: TypeReady}))
	got, err := n.Recv()
	require.NoError(t, err)
	assert.Equal(t, TypeReady, got.Type)
	// The old end is closed: the init's side of it sees end of stream.
	_, err = initEnd.Recv()
	assert.ErrorIs(t, err, ErrClosed)

	// No socket: nothing changes.
	same, ok := n.Rebound(&Received{Message: Message{Type: TypeControl}})
	assert.False(t, ok)
	assert.Same(t, n, same)
}
