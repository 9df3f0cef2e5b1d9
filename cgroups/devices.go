package cgroups

import (
	"github.com/openvessel/vessel/limits"
)

// DefaultDevices returns the device rules of a typical container: every
// device denied except /dev/null, zero, full, random, urandom, tty,
// console, ptmx and the pseudo-terminals below /dev/pts, and mknod of any
// character or block device (creating a node gives no access to it).
func DefaultDevices() []limits.DeviceRule {
	w := limits.Wildcard
	return []limits.DeviceRule{
		{Allow: false, Type: "a", Major: w, Minor: w, Access: "rwm"},
		{Allow: true, Type: "c", Major: w, Minor: w, Access: "m"},
		{Allow: true, Type: "b", Major: w, Minor: w, Access: "m"},
		{Allow: true, Type: "c", Major: 1, Minor: 3, Access: "rwm"},   // null
		{Allow: true, Type: "c", Major: 1, Minor: 5, Access: "rwm"},   // zero
		{Allow: true, Type: "c", Major: 1, Minor: 7, Access: "rwm"},   // full
		{Allow: true, Type: "c", Major: 1, Minor: 8, Access: "rwm"},   // random
		{Allow: true, Type: "c", Major: 1, Minor: 9, Access: "rwm"},   // urandom
		{Allow: true, Type: "c", Major: 5, Minor: 0, Access: "rwm"},   // tty
		{Allow: true, Type: "c", Major: 5, Minor: 1, Access: "rwm"},   // console
		{Allow: true, Type: "c", Major: 5, Minor: 2, Access: "rwm"},   // ptmx
		{Allow: true, Type: "c", Major: 136, Minor: w, Access: "rwm"}, // pts/*
	}
}
