package cgroups_test

import (
	"fmt"
	"os/exec"
	"syscall"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
)

// Run a command with half a core and 256 MiB, then report its usage.
func ExampleNew() {
	m, err := cgroups.New(cgroups.Options{
		Name: "vessel/job-42",
		Resources: &limits.Resources{
			Memory: &limits.Memory{Limit: limits.Ptr[int64](256 << 20)},
			CPU:    &limits.CPU{CPUs: limits.Ptr(0.5)},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Create(); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Destroy()

	cmd := exec.Command("make", "test")
	if fd, ok := m.FD(); ok { // start inside the cgroup (v2 and hybrid)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	if err := cmd.Start(); err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Add(cmd.Process.Pid); err != nil { // the v1 hierarchies
		fmt.Println(err)
	}
	cmd.Wait()
	if st, err := m.Stats(); err == nil {
		fmt.Println(st.CPU.Total, st.Memory.Peak, st.Memory.OOMKills)
	}
}
