package oci

import (
	"errors"
	"fmt"

	"github.com/openvessel/vessel/fielderr"
)

// ErrNotSupported is wrapped by the errors of spec fields that vessel
// cannot honour (yet): errors.Is(err, oci.ErrNotSupported).
var ErrNotSupported = errors.New("not supported by vessel")

// FieldError is a problem with one field of a spec (or, from ToSpec, of a
// Config): vessel's one field-error type (fielderr.Error, which
// vessel.ConfigError is too). Field is the JSON path of the field, like
// "linux.intelRdt" or "mounts[2].options"; Err is ErrNotSupported for
// features vessel lacks, else nil.
type FieldError = fielderr.Error

// problems collects the errors of one conversion, and the fields it
// ignored on purpose (as runc ignores them).
type problems struct {
	errs  []error
	warns []string
}

func (p *problems) warn(field, format string, a ...any) {
	p.warns = append(p.warns, field+": "+fmt.Sprintf(format, a...))
}

func (p *problems) bad(field, format string, a ...any) {
	p.errs = append(p.errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)})
}

func (p *problems) unsupported(field, format string, a ...any) {
	p.errs = append(p.errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, a...), Err: ErrNotSupported})
}

func (p *problems) err() error { return errors.Join(p.errs...) }
