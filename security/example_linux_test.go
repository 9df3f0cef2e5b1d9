package security_test

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/openvessel/vessel/security"
)

// The child half, as vessel's container init runs it: decode what the
// parent prepared, apply it on the locked thread, exec the program.
func ExampleApply() {
	runtime.LockOSThread() // in the init's main goroutine, before anything else

	var prepared security.Prepared
	if err := json.NewDecoder(os.Stdin).Decode(&prepared); err != nil { // the lead's socket, in vessel
		os.Exit(1)
	}
	listener, err := security.Apply(&prepared, security.Credential{UID: 1000, GID: 1000, Groups: []uint32{1000}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // a *security.StepError names the step
		os.Exit(1)
	}
	if listener >= 0 {
		// Hand the seccomp notify descriptor to the supervisor here.
	}
	_ = syscall.Exec("/bin/sh", []string{"sh"}, os.Environ())
}

func ExampleLoadSeccompJSON() {
	s, err := security.LoadSeccompJSON([]byte(`{
		"defaultAction": "SCMP_ACT_ERRNO",
		"syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
	}`))
	if err != nil {
		panic(err)
	}
	prog, err := s.Compile()
	if err != nil {
		panic(err)
	}
	fmt.Println(s.DefaultAction, prog.Listener)
	// Output: SCMP_ACT_ERRNO false
}
