// Command nested runs a container that runs a container.
//
// The outer container is made with Config.WithNesting: it has a user
// namespace of its own, where its root is an unprivileged host user
// (100000), and every capability inside it — which reaches only the
// namespaces that user namespace owns. In it this same program runs again
// ("nested inner") and uses vessel to start the inner container. Each level
// prints its hostname, its pid as it sees it, and its pid and user
// namespaces, so the levels can be told apart.
//
// Usage (as root):
//
//	nested [-cgroup GROUP]
//
// See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/openvessel/vessel"
)

func main() {
	vessel.Init() // in a container child this sets up and never returns
	if len(os.Args) > 1 && os.Args[1] == "inner" {
		if err := runInner(); err != nil {
			fmt.Fprintln(os.Stderr, "nested (level 1):", err)
			os.Exit(1)
		}
		return
	}
	cgroup := flag.String("cgroup", "", "cgroup group of the outer container (default $VESSEL_CGROUP_GROUP, else vessel)")
	flag.Parse()
	if err := runOuter(*cgroup); err != nil {
		fmt.Fprintln(os.Stderr, "nested:", err)
		os.Exit(1)
	}
}

// describe is one level's view of itself.
func describe(level int, what string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("level %d (%s): hostname=%s pid=%d pidns=%s userns=%s uid_map=%q",
		level, what, host, os.Getpid(), nsID("pid"), nsID("user"), uidMap())
}

func nsID(kind string) string {
	l, err := os.Readlink("/proc/self/ns/" + kind)
	if err != nil {
		return "?"
	}
	return strings.TrimSuffix(strings.TrimPrefix(l, kind+":["), "]")
}

func uidMap() string {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// runOuter runs on the host: it starts the outer container, which runs
// this program in inner mode.
func runOuter(cgroup string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Println(describe(0, "host"))
	// The host's files, read-only, are the root (with private /tmp and
	// /run); the program is bound in at /nested. Container root is host
	// uid 100000, so the program must be readable and executable by others.
	cfg := vessel.NewConfig().WithNesting().WithHostname("outer").WithBind(self, "/nested", true)
	if cgroup != "" {
		cfg.Cgroup.Group = cgroup
	}
	c, err := vessel.New(fmt.Sprintf("nested-outer-%d", os.Getpid()), cfg)
	if err != nil {
		return err
	}
	defer c.Destroy()
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Start(context.Background(), "/nested", "inner"); err != nil {
		return fmt.Errorf("start the outer container: %w", err)
	}
	fmt.Printf("level 0 (host): started container %q, its process is pid %d here\n", c.ID(), c.State().Pid)
	if err := c.Wait(); err != nil {
		return fmt.Errorf("outer container: %w", err)
	}
	return nil
}

// inner is what the inner container runs: the host's shell, reporting
// from the second level down.
const inner = `printf 'level 2 (inner): hostname=%s pid=%d ppid=%d pidns=%s userns=%s uid_map="%s"\n' \
	"$(hostname)" $$ $PPID \
	"$(readlink /proc/self/ns/pid | tr -dc 0-9)" "$(readlink /proc/self/ns/user | tr -dc 0-9)" \
	"$(cat /proc/self/uid_map | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')"`

// runInner runs inside the outer container and starts the inner one.
func runInner() error {
	fmt.Println(describe(1, "outer"))
	cfg := vessel.NewConfig().WithHostname("inner")
	c, err := vessel.New("nested-inner", cfg)
	if err != nil {
		return err
	}
	defer c.Destroy()
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Start(context.Background(), "/bin/sh", "-c", inner); err != nil {
		return fmt.Errorf("start the inner container: %w", err)
	}
	fmt.Printf("level 1 (outer): started container %q, its process is pid %d here\n", c.ID(), c.State().Pid)
	for _, w := range c.Warnings() {
		fmt.Println("level 1 (outer): note:", w)
	}
	return c.Wait()
}
