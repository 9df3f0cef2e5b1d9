// Package fielderr holds the one error type that every vessel package
// returns for a bad configuration: an *Error names the field at fault and
// says why, so a caller (or a package that embeds another's
// configuration) finds the field with errors.As instead of reading
// messages.
//
// Field is the path of the field in the configuration's JSON form: the
// JSON names, dotted, with [i] for an element of a list and [key] for an
// entry of a map, like "resources.cpu.cpus", "process.env[2]",
// "mounts[1].destination" or "namespaces[network].path". A package names
// fields relative to its own type (the limits package says
// "memory.limit"); the package that embeds that type puts its own prefix
// in front with Prefix ("resources.memory.limit"). An argument of a call
// that is no configuration field is named in the same lowerCamel style
// ("id", "extraFiles", "preDumps").
//
// This package must not import any other vessel package: all of them
// import it.
package fielderr
