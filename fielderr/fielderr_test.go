package fielderr_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/fielderr"
)

func TestErrorMessageAndUnwrap(t *testing.T) {
	e := fielderr.New("cpu.cpus", "must be > 0, got %v", -1)
	assert.Equal(t, "invalid cpu.cpus: must be > 0, got -1", e.Error())
	assert.Nil(t, errors.Unwrap(e))

	w := fielderr.Wrap("rootfs.path", fs.ErrNotExist)
	assert.True(t, errors.Is(w, fs.ErrNotExist))
	assert.Equal(t, "invalid rootfs.path: file does not exist", w.Error())

	ns := &fielderr.Error{Field: "linux.intelRdt", Reason: "no RDT", Err: errors.New("not supported")}
	assert.Equal(t, "invalid linux.intelRdt: no RDT: not supported", ns.Error())
}

func TestPrefixEveryJoinedError(t *testing.T) {
	orig := fielderr.New("memory.limit", "bad")
	joined := errors.Join(orig, fielderr.New("[2]", "bad index"), errors.New("plain"), fielderr.New("", "whole"))
	got := fielderr.Split(fielderr.Prefix("resources.", joined))
	require.Len(t, got, 4)
	var fields []string
	for _, e := range got {
		var fe *fielderr.Error
		require.True(t, errors.As(e, &fe), "%v is not a *fielderr.Error", e)
		fields = append(fields, fe.Field)
	}
	assert.Equal(t, []string{"resources.memory.limit", "resources[2]", "resources", "resources"}, fields)
	// The plain error is kept as the cause; the original is not changed.
	assert.EqualError(t, got[2], "invalid resources: plain")
	assert.Equal(t, "memory.limit", orig.Field)

	one := fielderr.Prefix("network.", fielderr.New("subnet", "x"))
	var fe *fielderr.Error
	require.True(t, errors.As(one, &fe))
	assert.Equal(t, "network.subnet", fe.Field)
	assert.Nil(t, fielderr.Prefix("x.", nil))
	assert.Nil(t, fielderr.Split(nil))
}
