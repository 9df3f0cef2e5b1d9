// Command probe is the static test program that vessel's tests run inside
// containers. Build it with CGO_ENABLED=0; see package
// github.com/openvessel/vessel/internal/probe for its commands and output.
package main

import "github.com/openvessel/vessel/internal/probe"

func main() {
	probe.Main()
}
