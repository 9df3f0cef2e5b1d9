package oci

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel/namespaces"
)

// validateStrings reports every string of the spec that contains a NUL
// byte, naming its JSON path ("process.args[1]", "mounts[0].destination",
// "annotations[key]"): the kernel takes strings up to their first NUL, so
// such a string would mean something else than the spec says, and the
// start would fail later with an errno that names nothing.
func (c *converter) validateStrings(spec *specs.Spec) {
	walkStrings(reflect.ValueOf(spec), "", func(field, s string) {
		if i := strings.IndexByte(s, 0); i >= 0 {
			c.bad(field, "contains a NUL byte at offset %d", i)
		}
	})
}

// validateUTSNames checks hostname and domainname as RFC 1123 names.
func (c *converter) validateUTSNames(spec *specs.Spec) {
	for _, f := range []struct{ field, v string }{{"hostname", spec.Hostname}, {"domainname", spec.Domainname}} {
		if f.v == "" {
			continue
		}
		if err := namespaces.CheckUTSName(f.v); err != nil {
			c.bad(f.field, "%v", err)
		}
	}
}

// walkStrings calls fn for every string reachable from v (struct fields,
// slice elements, map keys and values), with its JSON path.
func walkStrings(v reflect.Value, field string, fn func(field, s string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), field, fn)
		}
	case reflect.String:
		fn(field, v.String())
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case name == "":
				name = f.Name
			}
			sub := name
			if field != "" {
				sub = field + "." + name
			}
			if f.Anonymous {
				sub = field
			}
			walkStrings(v.Field(i), sub, fn)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // bytes, not text
		}
		for i := 0; i < v.Len(); i++ {
			walkStrings(v.Index(i), fmt.Sprintf("%s[%d]", field, i), fn)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			name := fmt.Sprintf("%s[%q]", field, fmt.Sprint(k))
			if k.Kind() == reflect.String && strings.IndexByte(k.String(), 0) >= 0 {
				fn(field+" key", k.String())
			}
			walkStrings(v.MapIndex(k), name, fn)
		}
	}
}
