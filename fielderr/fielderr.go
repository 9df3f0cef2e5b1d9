package fielderr

import (
	"errors"
	"fmt"
	"strings"
)

// Error is an invalid configuration field.
type Error struct {
	// Field is the field's path (see the package documentation).
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Err, when set, is a cause a caller may test for with errors.Is
	// (for example oci.ErrNotSupported or fs.ErrNotExist).
	Err error
}

// New returns an *Error for field with a formatted reason.
func New(field, format string, a ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Wrap returns an *Error for field caused by err: the reason is err's
// message, and errors.Is sees err.
func Wrap(field string, err error) *Error {
	return &Error{Field: field, Reason: err.Error(), Err: err}
}

// Error returns "invalid FIELD: REASON", followed by ": " and Err's
// message when Err is set and the reason does not say it already.
func (e *Error) Error() string {
	if e.Err != nil && !strings.Contains(e.Reason, e.Err.Error()) {
		return fmt.Sprintf("invalid %s: %s: %v", e.Field, e.Reason, e.Err)
	}
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Prefix returns err with prefix put before the Field of every *Error in
// it (err may be one error or several joined with errors.Join). Errors
// that are not *Error are made into one for the field named by prefix
// without its trailing dot. A nil err gives nil. The errors are copied:
// the ones in err are left as they were.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range Split(err) {
		var fe *Error
		if errors.As(e, &fe) {
			cp := *fe
			switch {
			case cp.Field == "":
				cp.Field = trimDot(prefix)
			case cp.Field[0] == '[':
				cp.Field = trimDot(prefix) + cp.Field
			default:
				cp.Field = prefix + cp.Field
			}
			out = append(out, &cp)
			continue
		}
		out = append(out, &Error{Field: trimDot(prefix), Reason: e.Error(), Err: e})
	}
	if len(out) == 1 {
		return out[0]
	}
	return errors.Join(out...)
}

// Split returns the errors joined in err (errors.Join), or err alone.
func Split(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Split(e)...)
		}
		return out
	}
	return []error{err}
}

func trimDot(s string) string {
	if n := len(s); n > 0 && s[n-1] == '.' {
		return s[:n-1]
	}
	return s
}
