package oci_test

import (
	"fmt"

	"github.com/openvessel/vessel/oci"
)

// FromSpec turns a bundle's config.json into a Config for vessel.New.
func ExampleFromSpec() {
	spec := oci.DefaultSpec()
	spec.Process.Args = []string{"/bin/echo", "hello"}
	cfg, err := oci.FromSpec(spec, "/var/lib/bundles/web")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Rootfs.Path, cfg.ReadOnly, cfg.Process.Args, cfg.Namespaces.Kinds())
	// Output: /var/lib/bundles/web/rootfs true [/bin/echo hello] [cgroup ipc mount network pid uts]
}

// Whatever vessel cannot honour is an error naming the field.
func ExampleFromSpec_unsupported() {
	spec := oci.DefaultSpec()
	spec.Process.ApparmorProfile = "docker-default"
	_, err := oci.FromSpec(spec, "/b")
	fmt.Println(err)
	// Output: invalid process.apparmorProfile: vessel does not apply AppArmor profiles (got "docker-default"): not supported by vessel
}

// ToSpec writes a Config back as a spec.
func ExampleToSpec() {
	cfg, _ := oci.FromSpec(oci.DefaultSpec(), "/b")
	spec, err := oci.ToSpec(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(spec.Root.Path, spec.Hostname, len(spec.Mounts))
	// Output: /b/rootfs vessel 7
}

// DefaultSpec is what `vessel spec` writes into a bundle.
func ExampleDefaultSpec() {
	s := oci.DefaultSpec()
	fmt.Println(s.Root.Path, s.Process.Args, s.Process.Terminal, s.Process.Capabilities.Bounding)
	// Output: rootfs [sh] true [CAP_AUDIT_WRITE CAP_KILL CAP_NET_BIND_SERVICE]
}
