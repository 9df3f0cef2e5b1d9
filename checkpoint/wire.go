package checkpoint

import "encoding/binary"

// The protobuf wire format, as much of it as CRIU's images and RPC
// messages need: tags, varints and length-delimited fields, and skipping
// the fixed-size kinds. google.golang.org/protobuf/encoding/protowire does
// the same, but importing it initialises that module's internal/detrand,
// which hashes the program's own executable at start: every program
// linking vessel, every container init among them, paid for that.

// number is a field number; wireType is how its value is encoded.
type (
	number   int32
	wireType int8
)

const (
	varintType  wireType = 0
	fixed64Type wireType = 1
	bytesType   wireType = 2
	fixed32Type wireType = 5
)

// consumeVarint decodes a varint at the start of b and returns it and its
// length, or a negative length when b does not hold one.
func consumeVarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, -1
	}
	return v, n
}

// consumeTag decodes a field's tag.
func consumeTag(b []byte) (number, wireType, int) {
	v, n := consumeVarint(b)
	if n < 0 || v>>3 == 0 || v>>3 > 1<<29-1 {
		return 0, 0, -1
	}
	return number(v >> 3), wireType(v & 7), n
}

// consumeBytes decodes a length-delimited value.
func consumeBytes(b []byte) ([]byte, int) {
	l, n := consumeVarint(b)
	if n < 0 || l > uint64(len(b)-n) {
		return nil, -1
	}
	return b[n : n+int(l)], n + int(l)
}

// consumeFieldValue returns the length of a value of type typ at the start
// of b, or -1. Groups (long deprecated, unused by CRIU) are refused.
func consumeFieldValue(typ wireType, b []byte) int {
	switch typ {
	case varintType:
		_, n := consumeVarint(b)
		return n
	case fixed64Type:
		if len(b) < 8 {
			return -1
		}
		return 8
	case fixed32Type:
		if len(b) < 4 {
			return -1
		}
		return 4
	case bytesType:
		_, n := consumeBytes(b)
		return n
	}
	return -1
}

func appendVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendTag(b []byte, num number, typ wireType) []byte {
	return appendVarint(b, uint64(num)<<3|uint64(typ))
}

func appendBytes(b []byte, v []byte) []byte {
	return append(appendVarint(b, uint64(len(v))), v...)
}

func encodeBool(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}
