package initproto

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
)

// The hand-written envelope encoder says what encoding/json says: both
// decode to the same message, for every field and awkward strings.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "started", `quo"te`, `back\slash`, "tab\tnl\nnul\x00", "<html>&amp;", "ünï\u2028code", "bad\xffutf8", "\x7f\x1f"}
	r := rand.New(rand.NewSource(1))
	pick := func() string { return strs[r.Intn(len(strs))] }
	num := func() int { return []int{0, 1, -1, 1 << 30, -(1 << 40)}[r.Intn(5)] }
	for i := 0; i < 500; i++ {
		m := &Message{Type: Kind(pick()), ID: num(), Signal: num(), Pid: num(), PidFD: r.Intn(2) == 0}
		if r.Intn(2) == 0 {
			m.Payload = Encode(map[string]any{"args": []string{pick(), pick()}, "n": num()})
		}
		if r.Intn(2) == 0 {
			m.Error = &ErrorInfo{Step: pick(), Path: pick(), Errno: num(), Msg: pick()}
		}
		if r.Intn(2) == 0 {
			m.Exit = &ExitInfo{Code: num(), Signal: num(), Core: r.Intn(2) == 0}
		}
		ours := m.appendJSON(nil)
		if !json.Valid(ours) {
			t.Fatalf("invalid JSON for %+v: %s", m, ours)
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var a, b Message
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatalf("%s: %v", ours, err)
		}
		if err := json.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("decodes differently:\nours %s\njson %s", ours, want)
		}
	}
}
