package checkpoint

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire codec reads and writes what protowire does, for every kind
// CRIU's messages use, and refuses what protowire refuses.
func TestWireMatchesProtowire(t *testing.T) {
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 1<<63+5)
	msg = protowire.AppendTag(msg, 2, protowire.Fixed64Type)
	msg = protowire.AppendFixed64(msg, 0xdeadbeefcafe)
	msg = protowire.AppendTag(msg, 3, protowire.Fixed32Type)
	msg = protowire.AppendFixed32(msg, 7)
	msg = protowire.AppendTag(msg, 1<<29-1, protowire.BytesType)
	msg = protowire.AppendBytes(msg, []byte("payload"))

	var ours []byte
	ours = appendTag(ours, 1, varintType)
	ours = appendVarint(ours, 1<<63+5)
	if string(ours) != string(msg[:len(ours)]) {
		t.Fatalf("varint field encodes as %x, protowire %x", ours, msg[:len(ours)])
	}
	var nums []number
	ok := eachField(msg, func(num number, typ wireType, val, whole []byte) {
		nums = append(nums, num)
		if typ == bytesType {
			if v, _ := consumeBytes(val); string(v) != "payload" {
				t.Errorf("bytes field reads %q", v)
			}
		}
	})
	if !ok || len(nums) != 4 || nums[3] != 1<<29-1 {
		t.Fatalf("fields %v (complete %v), want 1 2 3 %d", nums, ok, 1<<29-1)
	}
	// Every truncation is refused by both.
	for i := 1; i < len(msg); i++ {
		theirs := true
		for b := msg[:i]; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				theirs = false
				break
			}
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				theirs = false
				break
			}
			b = b[n+m:]
		}
		if mine := eachField(msg[:i], func(number, wireType, []byte, []byte) {}); mine != theirs {
			t.Errorf("first %d bytes: complete %v, protowire %v", i, mine, theirs)
		}
	}
	// Field number 0 and groups are refused.
	if eachField([]byte{0x00, 0x01}, func(number, wireType, []byte, []byte) {}) {
		t.Error("field number 0 accepted")
	}
	if eachField(protowire.AppendTag(nil, 4, protowire.StartGroupType), func(number, wireType, []byte, []byte) {}) {
		t.Error("group accepted")
	}
	if b := appendBytes(nil, []byte("xy")); string(b) != string(protowire.AppendBytes(nil, []byte("xy"))) {
		t.Errorf("bytes encode as %x", b)
	}
}
