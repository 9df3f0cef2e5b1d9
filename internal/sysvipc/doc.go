// Package sysvipc empties an IPC namespace of its System V objects (shared
// memory segments, message queues, semaphore sets), for vessel's Pool: a
// job must not find what the previous job left there.
//
// It must only ever act inside the IPC namespace of the process it is
// given (never the caller's own), and only remove objects: it does not
// create, read or change them.
package sysvipc
