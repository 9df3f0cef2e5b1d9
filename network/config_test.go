package network

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/openvessel/vessel/fielderr"
)

func TestParse(t *testing.T) {
	good := map[string]Config{
		"none":           {Mode: ModeNone},
		"loopback":       {Mode: ModeLoopback},
		"host":           {Mode: ModeHost},
		"bridge":         {Mode: ModeBridge},
		"bridge=br7":     {Mode: ModeBridge, Bridge: "br7"},
		"macvlan=eth1":   {Mode: ModeMacvlan, Parent: "eth1"},
		"ipvlan=eth2":    {Mode: ModeIpvlan, Parent: "eth2"},
		"netns=/run/x/y": {Mode: ModeNetns, NetnsPath: "/run/x/y"},
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "bogus", "host=x", "bridge=", "macvlan", "ipvlan=", "netns"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestParsePort(t *testing.T) {
	good := map[string]Port{
		"8080:80":               {HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		"8080:80/udp":           {HostPort: 8080, ContainerPort: 80, Protocol: "udp"},
		"127.0.0.1:5353:53/udp": {HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
	}
	for in, want := range good {
		got, err := ParsePort(in)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParsePort(got.String()); err != nil || again != got {
			t.Errorf("round trip of %q: %+v, %v", in, again, err)
		}
	}
	bad := map[string]string{
		"80":           "want",
		"0:80":         "host port",
		"80:70000":     "container port",
		"80:80/sctp":   "protocol",
		"x.y:80:80":    "host address",
		"::1:80:80":    "want",
		"1:2:3:4":      "want",
		"80:80/tcp/ud": "protocol",
	}
	for in, want := range bad {
		if _, err := ParsePort(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePort(%q) error %v, want one mentioning %q", in, err, want)
		}
	}
}

func TestParseRule(t *testing.T) {
	good := map[string]Rule{
		"deny:10.0.0.0/8":         {Action: Deny, CIDR: "10.0.0.0/8"},
		"allow:0.0.0.0/0:443/tcp": {Action: Allow, CIDR: "0.0.0.0/0", Port: 443, Protocol: "tcp"},
		"allow:1.1.1.1/32/udp":    {Action: Allow, CIDR: "1.1.1.1/32", Protocol: "udp"},
	}
	for in, want := range good {
		got, err := ParseRule(in)
		if err != nil || got != want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("String() = %q, want %q", got.String(), in)
		}
	}
	for _, in := range []string{"deny", "drop:1.2.3.0/24", "allow:1.2.3/24", "allow:1.2.3.0/24:80", "allow:1.2.3.0/24:x/tcp"} {
		if _, err := ParseRule(in); err == nil {
			t.Errorf("ParseRule(%q) succeeded", in)
		}
	}
}

func TestValidate(t *testing.T) {
	c := Config{}
	if err := c.Validate(); err != nil || c.Mode != ModeNone || c.FirewallDefault != Allow {
		t.Fatalf("zero config: %+v %v", c, err)
	}
	b := Config{Mode: ModeBridge, Publish: []Port{{HostPort: 1, ContainerPort: 2}}}
	if err := b.Validate(); err != nil || b.Bridge != DefaultBridge || b.Publish[0].Protocol != "tcp" {
		t.Fatalf("bridge defaults: %+v %v", b, err)
	}
	bad := []struct {
		c     Config
		field string
	}{
		{Config{Mode: "wifi"}, "mode"},
		{Config{Mode: ModeBridge, Subnet: "10.1.2.0/33"}, "subnet"},
		{Config{Mode: ModeBridge, Subnet: "10.1.2.3/24"}, "subnet"},
		{Config{Mode: ModeBridge, Subnet: "fd00::/64"}, "subnet"},
		{Config{Mode: ModeBridge, Subnet: "banana"}, "subnet"},
		{Config{Mode: ModeLoopback, Subnet: "10.1.2.0/24"}, "subnet"},
		{Config{Mode: ModeBridge, Bridge: "this-name-is-too-long"}, "bridge"},
		{Config{Mode: ModeMacvlan, Parent: "eth0"}, "address"},
		{Config{Mode: ModeMacvlan, Address: "10.0.0.2/24"}, "parent"},
		{Config{Mode: ModeMacvlan, Parent: "eth0", Address: "10.0.0.2/24", Gateway: "10.9.0.1"}, "gateway"},
		{Config{Mode: ModeIpvlan, Parent: "eth0", Address: "10.0.0.300/24"}, "address"},
		{Config{Mode: ModeNetns}, "netnsPath"},
		{Config{Mode: ModeNetns, NetnsPath: "/etc/hostname"}, "netnsPath"},
		{Config{Mode: ModeHost, Interfaces: []string{"eth1"}}, "interfaces"},
		{Config{Mode: ModeLoopback, Interfaces: []string{"a", "a"}}, "interfaces[1]"},
		{Config{Mode: ModeLoopback, Publish: []Port{{HostPort: 1, ContainerPort: 1}}}, "publish"},
		{Config{Mode: ModeBridge, Publish: []Port{{HostPort: 0, ContainerPort: 1}}}, "publish[0]"},
		{Config{Mode: ModeBridge, Publish: []Port{{HostPort: 5, ContainerPort: 1}, {HostPort: 5, ContainerPort: 2}}}, "publish[1]"},
		{Config{Mode: ModeBridge, Publish: []Port{{HostIP: "::1", HostPort: 5, ContainerPort: 1}}}, "publish[0]"},
		{Config{Mode: ModeBridge, Firewall: []Rule{{Action: "drop", CIDR: "1.0.0.0/8"}}}, "firewall[0]"},
		{Config{Mode: ModeBridge, Firewall: []Rule{{Action: Deny, CIDR: "1.0.0/8"}}}, "firewall[0]"},
		{Config{Mode: ModeBridge, Firewall: []Rule{{Action: Deny, CIDR: "1.0.0.0/8", Port: 3}}}, "firewall[0]"},
		{Config{Mode: ModeBridge, FirewallDefault: "maybe"}, "firewallDefault"},
		{Config{Mode: ModeLoopback, EgressRate: 1e6}, "egressRate"},
		{Config{Mode: ModeMacvlan, Parent: "x", Address: "10.0.0.2/24", IngressRate: 1e6}, "ingressRate"},
		{Config{Mode: ModeBridge, EgressRate: 10}, "egressRate"},
		{Config{Mode: ModeBridge, MTU: 100}, "mtu"},
		{Config{Mode: ModeBridge, Hostname: "a b"}, "hostname"},
		{Config{Mode: ModeBridge, DNS: []string{"dns.example"}}, "dns[0]"},
	}
	for _, tc := range bad {
		err := tc.c.Validate()
		var fe *fielderr.Error
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.c, err, tc.field)
		}
	}
}

func TestNewNamespace(t *testing.T) {
	for mode, want := range map[Mode]bool{ModeNone: true, ModeLoopback: true, ModeBridge: true, ModeMacvlan: true, ModeIpvlan: true, ModeHost: false, ModeNetns: false} {
		c := Config{Mode: mode}
		if got := c.NewNamespace(); got != want {
			t.Errorf("%s: NewNamespace() = %v", mode, got)
		}
	}
}

func TestCheckNetnsPath(t *testing.T) {
	if err := CheckNetnsPath("/proc/self/ns/net"); err != nil {
		t.Errorf("own netns: %v", err)
	}
	for _, p := range []string{"/proc/self/ns/uts", "/etc/hostname", "/nonexistent/ns"} {
		if err := CheckNetnsPath(p); err == nil {
			t.Errorf("CheckNetnsPath(%s) succeeded", p)
		}
	}
}

func TestResolvConf(t *testing.T) {
	f := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(f, []byte("# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n"), 0o644)
	got := string(resolvConf(Config{Mode: ModeBridge}, f))
	want := "search example.org\nnameserver 192.0.2.53\noptions edns0\n"
	if got != want {
		t.Errorf("host servers: got %q want %q", got, want)
	}
	got = string(resolvConf(Config{Mode: ModeBridge, DNS: []string{"9.9.9.9"}, DNSSearch: []string{"corp"}}, f))
	if got != "search corp\nnameserver 9.9.9.9\noptions edns0\n" {
		t.Errorf("DNS field: got %q", got)
	}
	os.WriteFile(f, []byte("nameserver 127.0.0.53\n"), 0o644)
	if got := string(resolvConf(Config{Mode: ModeBridge}, f)); strings.Contains(got, "127.0.0.53") {
		t.Errorf("loopback nameserver kept: %q", got)
	}
	if got := string(resolvConf(Config{Mode: ModeHost}, f)); got != "nameserver 127.0.0.53\n" {
		t.Errorf("host mode: %q", got)
	}
}
