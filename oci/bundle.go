package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel/rootfs"
)

// ConfigFile is the name of a bundle's configuration file.
const ConfigFile = "config.json"

// LoadSpec reads bundleDir/config.json. Errors say which file, and for a
// JSON problem the line and column or the field and the types involved.
// Unknown properties are ignored, as the specification requires.
func LoadSpec(bundleDir string) (*specs.Spec, error) {
	p := filepath.Join(bundleDir, ConfigFile)
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("oci: %s: no %s in the bundle directory (write one with `vessel spec`): %w", p, ConfigFile, err)
		}
		return nil, fmt.Errorf("oci: reading %s: %w", p, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("oci: %s: %s", p, describeJSONError(data, err))
	}
	if s.Version == "" {
		return nil, fmt.Errorf("oci: %s: ociVersion: missing", p)
	}
	if major, _, _ := strings.Cut(s.Version, "."); major != "1" {
		return nil, fmt.Errorf("oci: %s: ociVersion: %q is not a 1.x version (vessel implements %s)", p, s.Version, specs.Version)
	}
	return &s, nil
}

func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Sprintf("line %d, column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("%s: a JSON %s where %s is wanted (line %d, column %d)", field, typ.Value, typ.Type, line, col)
	}
	return err.Error()
}

func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// WriteSpec writes spec as bundleDir/config.json, indented, refusing to
// replace an existing file (as `runc spec` does).
func WriteSpec(bundleDir string, spec *specs.Spec) error {
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("oci: encoding the spec: %w", err)
	}
	p := filepath.Join(bundleDir, ConfigFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("oci: %s already exists; remove it first", p)
		}
		return fmt.Errorf("oci: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		os.Remove(p)
		return fmt.Errorf("oci: writing %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(p)
		return fmt.Errorf("oci: writing %s: %w", p, err)
	}
	return nil
}

// HooksOf returns a copy of the spec's hooks (nil when it has none),
// after checking each hook: an absolute path and a positive timeout. The
// command line runs them; a Config has no hooks.
func HooksOf(spec *specs.Spec) (*specs.Hooks, error) {
	if spec == nil || spec.Hooks == nil {
		return nil, nil
	}
	h := spec.Hooks
	var p problems
	check := func(name string, list []specs.Hook) []specs.Hook {
		var out []specs.Hook
		for i, hk := range list {
			field := fmt.Sprintf("hooks.%s[%d]", name, i)
			if hk.Path == "" || !filepath.IsAbs(hk.Path) {
				p.bad(field+".path", "%q is not an absolute path", hk.Path)
			}
			if hk.Timeout != nil && *hk.Timeout <= 0 {
				p.bad(field+".timeout", "%d: must be a positive number of seconds", *hk.Timeout)
			}
			for j, e := range hk.Env {
				if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
					p.bad(fmt.Sprintf("%s.env[%d]", field, j), "%q is not KEY=VALUE", e)
				}
			}
			out = append(out, specs.Hook{Path: hk.Path, Args: slices.Clone(hk.Args), Env: slices.Clone(hk.Env), Timeout: clonePtr(hk.Timeout)})
		}
		return out
	}
	out := &specs.Hooks{
		Prestart:        check("prestart", h.Prestart),
		CreateRuntime:   check("createRuntime", h.CreateRuntime),
		CreateContainer: check("createContainer", h.CreateContainer),
		StartContainer:  check("startContainer", h.StartContainer),
		Poststart:       check("poststart", h.Poststart),
		Poststop:        check("poststop", h.Poststop),
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// State is the runtime-spec state of a container, as `state` prints it and
// hooks read it on their standard input.
type State = specs.State

// NewState returns the state of container id for the runtime-spec version
// vessel implements. pid is the container process's host pid (0 when there
// is none); bundle should be the absolute path of the bundle directory.
func NewState(id string, status specs.ContainerState, pid int, bundle string, annotations map[string]string) State {
	var ann map[string]string
	if len(annotations) > 0 {
		ann = make(map[string]string, len(annotations))
		for k, v := range annotations {
			ann[k] = v
		}
	}
	return State{Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: ann}
}

// DefaultSpec returns the configuration `vessel spec` writes, the
// equivalent of `runc spec`: rootfs "rootfs" (read-only), "sh" on a
// terminal as root in "/", runc's three capabilities, no_new_privs, 1024
// open files, the standard mounts, vessel's masked and read-only paths,
// devices denied but the defaults, and new pid, network, ipc, uts, mount and
// cgroup namespaces.
func DefaultSpec() *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	var mounts []specs.Mount
	for _, m := range systemMounts {
		sm := m.spec
		sm.Options = slices.Clone(sm.Options)
		mounts = append(mounts, sm)
	}
	masked := slices.Clone(rootfs.DefaultMaskedPaths)
	for _, extra := range []string{"/sys/devices/virtual/tpm"} {
		if !slices.Contains(masked, extra) {
			masked = append(masked, extra)
		}
	}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Terminal: true,
			Args:     []string{"sh"},
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"TERM=xterm",
			},
			Cwd:             "/",
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  slices.Clone(caps),
				Permitted: slices.Clone(caps),
				Effective: slices.Clone(caps),
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Hostname: "vessel",
		Mounts:   mounts,
		Linux: &specs.Linux{
			MaskedPaths:   masked,
			ReadonlyPaths: slices.Clone(rootfs.DefaultReadonlyPaths),
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
		},
	}
}
