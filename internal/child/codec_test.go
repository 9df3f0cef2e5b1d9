package child

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// fill sets every field the codec must carry (all exported fields JSON
// does not leave out) of v: in mode 0 to nil where it can, in mode 1 to
// empty slices and maps, otherwise to values drawn from r. Keeping nil
// apart from empty matters: a nil MaskedPaths means the default list, an
// empty one none.
func fill(v reflect.Value, r *rand.Rand, mode int) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" || f.Type.Kind() == reflect.Func {
				continue
			}
			fill(v.Field(i), r, mode)
		}
	case reflect.Pointer:
		if mode == 0 && r.Intn(2) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), r, mode)
		v.Set(p)
	case reflect.Slice:
		switch {
		case mode == 0:
			v.SetZero()
		case mode == 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			n := 1 + r.Intn(3)
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := 0; i < n; i++ {
				fill(s.Index(i), r, mode)
			}
			v.Set(s)
		}
	case reflect.Map:
		switch {
		case mode == 0:
			v.SetZero()
		case mode == 1:
			v.Set(reflect.MakeMap(v.Type()))
		default:
			m := reflect.MakeMap(v.Type())
			for i := 0; i < 1+r.Intn(3); i++ {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(k, r, mode)
				fill(e, r, mode)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	case reflect.String:
		v.SetString(strings.Repeat("x", r.Intn(4)) + string(rune('a'+r.Intn(26))) + "/ü")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(r.Int63n(1<<uint(v.Type().Bits()-2)) - r.Int63n(1<<uint(v.Type().Bits()-3)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(r.Uint64() >> uint(64-v.Type().Bits()))
	default:
		panic("fill: unhandled kind " + v.Kind().String() + " of " + v.Type().String())
	}
}

func TestConfigCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		var in Config
		fill(reflect.ValueOf(&in).Elem(), r, i%4)
		var out Config
		b := EncodeConfig(&in)
		if err := decodeConfig(b, &out); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if !reflect.DeepEqual(in, out) {
			a, _ := json.Marshal(in)
			c, _ := json.Marshal(out)
			t.Fatalf("round %d: config changed on the way:\n in %s\nout %s", i, a, c)
		}
		var p Process
		if err := decodeProcess(encodeProcess(&in.Process), &p); err != nil || !reflect.DeepEqual(in.Process, p) {
			t.Fatalf("round %d: process changed on the way (%v)", i, err)
		}
		if i == 0 || i == 3 {
			// Every truncation and any trailing byte is refused, never
			// a panic or a silently partial config.
			for n := 0; n < len(b); n++ {
				var c Config
				if err := decodeConfig(b[:n], &c); err == nil {
					t.Fatalf("round %d: first %d of %d bytes accepted", i, n, len(b))
				}
			}
			if err := decodeConfig(append(bytes.Clone(b), 0), &Config{}); err == nil {
				t.Fatalf("round %d: trailing byte accepted", i)
			}
		}
	}
	// A count that promises more than the message holds fails without
	// allocating it.
	if err := decodeConfig([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f}, &Config{}); err == nil {
		t.Fatal("huge count accepted")
	}
}
