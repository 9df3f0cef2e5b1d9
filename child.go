package vessel

import "github.com/openvessel/vessel/internal/child"

// Init must be the first statement of main in every program that uses
// vessel. In the program itself it returns at once.
//
// A container child (the same binary, re-executed by Start) normally
// never gets here: it runs, and ends, while the program's packages are
// being initialised (package internal/child). Init catches a child whose
// initialisation order put it later.
func Init() { child.Main() }

// IsChild reports whether this process is a vessel container child.
func IsChild() bool { return child.IsChild() }
