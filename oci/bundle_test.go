package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

func TestWriteAndLoadSpec(t *testing.T) {
	dir := t.TempDir()
	s := DefaultSpec()
	if err := WriteSpec(dir, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteSpec(dir, s); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second WriteSpec: %v, want an already-exists error", err)
	}
	got, err := LoadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("LoadSpec(WriteSpec(s)) differs:\n got %+v\nwant %+v", got, s)
	}
}

func TestLoadSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"missing", "", []string{"no config.json", "vessel spec"}},
		{"syntax", "{\n  \"ociVersion\": \"1.3.0\",\n  \"process\": {,}\n}", []string{"line 3, column"}},
		{"wrong type", `{"ociVersion": "1.3.0", "process": {"args": "sh"}}`, []string{"process.args", "string", "[]string"}},
		{"no version", `{"process": {"args": ["sh"]}}`, []string{"ociVersion: missing"}},
		{"version 0.x", `{"ociVersion": "0.5.0"}`, []string{"ociVersion", "0.5.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.json != "" {
				if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.json), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadSpec(dir)
			if err == nil {
				t.Fatal("LoadSpec succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"ociVersion":"1.0.2","futureField":{"x":1},"process":{"args":["sh"],"cwd":"/"}}`), 0o644)
	if _, err := LoadSpec(dir); err != nil {
		t.Errorf("an unknown property must be ignored, as the specification says: %v", err)
	}
	if _, err := LoadSpec(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing bundle: %v, want it to wrap fs.ErrNotExist", err)
	}
}

func TestHooksOf(t *testing.T) {
	s := DefaultSpec()
	if h, err := HooksOf(s); h != nil || err != nil {
		t.Errorf("no hooks: got %+v, %v", h, err)
	}
	s.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{{Path: "/bin/a"}},
		CreateRuntime:   []specs.Hook{{Path: "/bin/b", Args: []string{"b", "x"}, Env: []string{"K=v"}, Timeout: ptr(3)}},
		CreateContainer: []specs.Hook{{Path: "/bin/c"}},
		StartContainer:  []specs.Hook{{Path: "/bin/d"}},
		Poststart:       []specs.Hook{{Path: "/bin/e"}},
		Poststop:        []specs.Hook{{Path: "/bin/f"}},
	}
	h, err := HooksOf(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, s.Hooks) {
		t.Errorf("HooksOf = %+v, want %+v", h, s.Hooks)
	}
	h.CreateRuntime[0].Args[0] = "changed"
	*h.CreateRuntime[0].Timeout = 99
	if s.Hooks.CreateRuntime[0].Args[0] != "b" || *s.Hooks.CreateRuntime[0].Timeout != 3 {
		t.Error("HooksOf returned memory shared with the spec")
	}
}

func TestNewState(t *testing.T) {
	ann := map[string]string{"a": "b"}
	st := NewState("c1", specs.StateCreated, 42, "/b", ann)
	ann["a"] = "changed"
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ociVersion":"` + specs.Version + `","id":"c1","status":"created","pid":42,"bundle":"/b","annotations":{"a":"b"}}`
	if string(data) != want {
		t.Errorf("state JSON = %s\nwant %s", data, want)
	}
	if st := NewState("c2", specs.StateStopped, 0, "/b", nil); st.Annotations != nil || st.Pid != 0 {
		t.Errorf("stopped state = %+v", st)
	}
}
