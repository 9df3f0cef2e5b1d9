package security

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecideMatchesBPFVM runs the default filter and an argument-heavy
// one through Decide and through golang.org/x/net/bpf's VM for every known
// system call and random arguments: the answers must be identical.
func TestDecideMatchesBPFVM(t *testing.T) {
	argHeavy := &Seccomp{DefaultAction: ActErrno, Syscalls: []Syscall{
		{Names: []string{"write", "read"}, Action: ActAllow, Args: []Arg{{Index: 0, Value: 2, Op: OpLessEqual}}},
		{Names: []string{"mmap"}, Action: ActAllow, Args: []Arg{{Index: 2, Value: 4, ValueTwo: 0, Op: OpMaskedEqual}}},
		{Names: []string{"kill"}, Action: ActTrap, Args: []Arg{{Index: 1, Value: 1 << 40, Op: OpGreaterThan}}},
		{Names: []string{"clone"}, Action: ActAllow, Args: []Arg{{Index: 0, Value: 0x7e020000, ValueTwo: 0, Op: OpMaskedEqual}}},
	}}
	rng := rand.New(rand.NewSource(1))
	for _, s := range []*Seccomp{DefaultSeccomp(), argHeavy} {
		p, err := s.CompileWith(CompileOptions{GOARCH: "amd64", Caps: DefaultCapabilities().Bounding, KernelVersion: "6.18"})
		require.NoError(t, err)
		v := newVM(t, p)
		for name, nr := range syscallsX8664() {
			for i := 0; i < 4; i++ {
				var args [6]uint64
				for j := range args {
					switch rng.Intn(3) {
					case 0:
						args[j] = uint64(rng.Intn(8))
					case 1:
						args[j] = rng.Uint64()
					default:
						args[j] = uint64(rng.Uint32())
					}
				}
				want := v.run(v.arch, nr, args[:]...)
				require.Equal(t, want, p.Decide(nr, args), "%s %v", name, args)
			}
		}
	}
}

func TestAllowsAll(t *testing.T) {
	p, err := DefaultSeccomp().CompileWith(CompileOptions{Caps: DefaultCapabilities().Bounding})
	require.NoError(t, err)
	calls := []Call{{Name: "wait4"}, {Name: "futex"}, {Name: "clone", Args: [6]uint64{0x50f00}}}
	require.NoError(t, p.AllowsAll(calls))
	// clone with a namespace flag is refused by the default profile.
	err = p.AllowsAll([]Call{{Name: "clone", Args: [6]uint64{0x10000000}}})
	require.True(t, err != nil && strings.Contains(err.Error(), "clone"), err)

	strict := &Seccomp{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"wait4"}, Action: ActErrno}}}
	sp, err := strict.CompileWith(CompileOptions{})
	require.NoError(t, err)
	err = sp.AllowsAll(calls)
	require.True(t, err != nil && strings.Contains(err.Error(), "wait4"), err)
	require.NoError(t, (*Program)(nil).AllowsAll(calls))
}
