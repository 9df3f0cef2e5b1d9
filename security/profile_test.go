package security

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaultCapabilitiesAreDockers(t *testing.T) {
	c := DefaultCapabilities()
	sets, err := c.resolve(40)
	require.NoError(t, err)
	require.Equal(t, uint64(dockerDefaultMask), sets.Bounding)
	require.Equal(t, uint64(dockerDefaultMask), sets.Effective)
	require.Equal(t, uint64(dockerDefaultMask), sets.Permitted)
	require.Equal(t, uint64(0), sets.Inheritable)
	require.Equal(t, uint64(0), sets.Ambient)
	require.Equal(t, 14, len(c.Bounding))
}

func TestCapabilityNamesAndHelpers(t *testing.T) {
	for _, n := range []string{"CAP_NET_ADMIN", "net_admin", "NET_ADMIN", "cap_net_admin", " Net_Admin "} {
		c, err := ParseCapability(n)
		require.NoError(t, err, n)
		require.Equal(t, 12, int(c), n)
	}
	_, err := ParseCapability("CAP_FLY")
	require.ErrorContains(t, err, `unknown capability "CAP_FLY"`)

	c := DefaultCapabilities().WithAdd("sys_admin", "NET_ADMIN").WithDrop("cap_chown", "kill")
	sets, err := c.resolve(40)
	require.NoError(t, err)
	want := uint64(dockerDefaultMask)&^(1<<0|1<<5) | 1<<21 | 1<<12
	require.Equal(t, want, sets.Bounding)
	require.Equal(t, want, sets.Effective)
	require.True(t, slices.Equal(DefaultCapabilities().Bounding, dockerDefaultCaps), "WithAdd must not modify its receiver")

	none := DefaultCapabilities().WithDrop("ALL")
	sets, err = none.resolve(40)
	require.NoError(t, err)
	require.Equal(t, CapSets{LastCap: 40}, *sets)

	all := (*Capabilities)(nil).WithAdd("ALL")
	sets, err = all.resolve(40)
	require.NoError(t, err)
	require.Equal(t, uint64(1<<41-1), sets.Bounding)
	// Capabilities the kernel does not have are dropped.
	sets, err = AllCapabilities().resolve(37)
	require.NoError(t, err)
	require.Equal(t, uint64(1<<38-1), sets.Permitted)
}

func TestCapabilityValidationErrors(t *testing.T) {
	cases := map[string]*Capabilities{
		`capabilities.bounding: unknown capability "fly"`:             {Bounding: []string{"fly"}},
		`capabilities.ambient: unknown capability "x"`:                {Ambient: []string{"x"}},
		"capabilities.effective: CAP_KILL not in the permitted set":   {Effective: []string{"KILL"}},
		"capabilities.ambient: CAP_CHOWN must also be in both":        {Permitted: []string{"CHOWN"}, Ambient: []string{"CHOWN"}},
		`capabilities.inheritable: "ALL" is only accepted by WithAdd`: {Inheritable: []string{"all"}},
		"capabilities.permitted: empty capability name":               {Permitted: []string{" "}},
		`capabilities.bounding: unknown capability "CAP_NOT_A_CAP"`:   DefaultCapabilities().WithAdd("NOT_A_CAP"),
	}
	for want, c := range cases {
		require.ErrorContains(t, c.Validate(), want)
		_, err := (&Profile{Capabilities: c}).Prepare()
		require.ErrorContains(t, err, want)
	}
}

func TestProfilePrepare(t *testing.T) {
	prep, err := DefaultProfile().Prepare()
	require.NoError(t, err)
	require.True(t, prep.NoNewPrivileges)
	require.True(t, prep.Seccomp != nil && len(prep.Seccomp.Filter) > 100)
	require.True(t, prep.Landlock == nil)
	require.Equal(t, uint64(dockerDefaultMask), prep.Capabilities.Bounding)
	require.True(t, prep.Capabilities.LastCap >= 40, prep.Capabilities.LastCap)

	priv, err := Privileged().Prepare()
	require.NoError(t, err)
	require.True(t, priv.Seccomp == nil && !priv.NoNewPrivileges)
	require.Equal(t, uint64(1)<<(priv.Capabilities.LastCap+1)-1, priv.Capabilities.Bounding)

	// Prepared is plain data.
	b, err := json.Marshal(prep)
	require.NoError(t, err)
	var back Prepared
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, *prep.Capabilities, *back.Capabilities)
	require.Equal(t, prep.Seccomp.Filter, back.Seccomp.Filter)

	var zero *Profile
	z, err := zero.Prepare()
	require.NoError(t, err)
	require.Equal(t, Prepared{}, *z)
}

func TestProfileSecurebitsAndLandlockErrors(t *testing.T) {
	p := DefaultProfile()
	p.Securebits = []string{"SECBIT_NOPE"}
	_, err := p.Prepare()
	require.ErrorContains(t, err, `securebits: unknown securebit "SECBIT_NOPE"`)

	p = DefaultProfile()
	p.Securebits = []string{"secbit_noroot", "SECBIT_NO_CAP_AMBIENT_RAISE"}
	p.Capabilities = &Capabilities{Permitted: []string{"KILL"}, Inheritable: []string{"KILL"}, Ambient: []string{"KILL"}}
	_, err = p.Prepare()
	require.ErrorContains(t, err, "SECBIT_NO_CAP_AMBIENT_RAISE forbids")

	p.Capabilities.Ambient = nil
	prep, err := p.Prepare()
	require.NoError(t, err)
	require.Equal(t, uint32(1|1<<6), *prep.Securebits)

	for want, l := range map[string]*Landlock{
		`landlock.readOnly: path "etc" is not absolute`:       {Enabled: true, ReadOnly: []string{"etc"}},
		`landlock.readWrite: path "/tmp/../etc" is not clean`: {Enabled: true, ReadWrite: []string{"/tmp/../etc"}},
		"landlock: enabled but restricts nothing":             {Enabled: true},
	} {
		p := DefaultProfile()
		p.Landlock = l
		_, err := p.Prepare()
		require.ErrorContains(t, err, want)
	}
	// Disabled rulesets are not checked and not carried.
	p = DefaultProfile()
	p.Landlock = &Landlock{ReadOnly: []string{"relative"}}
	prep, err = p.Prepare()
	require.NoError(t, err)
	require.True(t, prep.Landlock == nil)
	// Net-only rulesets are fine; an empty non-nil list denies every port.
	p.Landlock = &Landlock{Enabled: true, BindTCP: []uint16{}}
	prep, err = p.Prepare()
	require.NoError(t, err)
	b, _ := json.Marshal(prep.Landlock)
	var back Landlock
	require.NoError(t, json.Unmarshal(b, &back))
	require.True(t, back.BindTCP != nil && back.ConnectTCP == nil, string(b))
}

func TestCheckSysctl(t *testing.T) {
	ok := []struct {
		name          string
		net, ipc, uts bool
	}{
		{"net.ipv4.ip_forward", true, false, false},
		{"net/ipv4/conf/eth0.100/forwarding", true, false, false},
		{"kernel.shmmax", false, true, false},
		{"kernel.msgmnb", false, true, false},
		{"kernel.sem", false, true, false},
		{"fs.mqueue.msg_max", false, true, false},
		{"kernel.hostname", false, false, true},
		{"kernel.domainname", false, false, true},
	}
	for _, c := range ok {
		require.NoError(t, CheckSysctl(c.name, c.net, c.ipc, c.uts), c.name)
	}
	bad := map[string]string{
		"net.ipv4.ip_forward":   "network namespace",
		"kernel.shmmax":         "IPC namespace",
		"fs.mqueue.queues_max":  "IPC namespace",
		"kernel.hostname":       "UTS namespace",
		"kernel.pid_max":        "not namespaced",
		"vm.swappiness":         "not namespaced",
		"kernel.shmmaxx":        "not namespaced",
		"":                      "empty name",
		"net..ipv4":             "malformed",
		"net/../kernel/pid_max": "malformed",
	}
	for name, want := range bad {
		require.ErrorContains(t, CheckSysctl(name, false, false, false), want, name)
	}
	require.ErrorContains(t, CheckSysctl("kernel.pid_max", true, true, true), "not namespaced")
	require.Equal(t, "/proc/sys/net/ipv4/conf/eth0.100/forwarding", SysctlPath("net.ipv4.conf.eth0/100.forwarding"))
	require.Equal(t, "/proc/sys/net/ipv4/conf/eth0.100/forwarding", SysctlPath("net/ipv4/conf/eth0.100/forwarding"))
	require.Equal(t, "net.ipv4.conf.eth0/100.forwarding", NormalizeSysctl("net/ipv4/conf/eth0.100/forwarding"))
}

func ExampleProfile_Prepare() {
	p := DefaultProfile()
	p.Capabilities = p.Capabilities.WithDrop("NET_RAW").WithAdd("SYS_PTRACE")
	p.Landlock = &Landlock{Enabled: true, ReadExec: []string{"/"}, ReadWrite: []string{"/tmp", "/dev"}}
	prepared, err := p.Prepare()
	if err != nil {
		panic(err)
	}
	// Send it to the container child...
	b, _ := json.Marshal(prepared)
	// ... which, on its locked thread, calls Apply then execs:
	//
	//	fd, err := security.Apply(&prepared, security.Credential{UID: 1000, GID: 1000})
	fmt.Println(len(b) > 0, prepared.NoNewPrivileges, maskNames(prepared.Capabilities.Bounding&(1<<13|1<<19)))
	// Output: true true CAP_SYS_PTRACE
}
