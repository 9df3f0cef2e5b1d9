package security

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Small assertion helpers (testify's yaml dependency is not in go.sum).

func msgOf(args []any) string {
	if len(args) == 0 {
		return ""
	}
	if f, ok := args[0].(string); ok && len(args) > 1 {
		return ": " + fmt.Sprintf(f, args[1:]...)
	}
	return ": " + fmt.Sprint(args...)
}

func eq(t testing.TB, want, got any, args ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("want %#v, got %#v%s", want, got, msgOf(args))
	}
}

func isTrue(t testing.TB, v bool, args ...any) {
	t.Helper()
	if !v {
		t.Fatalf("condition is false%s", msgOf(args))
	}
}

func noErr(t testing.TB, err error, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v%s", err, msgOf(args))
	}
}

func errContains(t testing.TB, err error, sub string, args ...any) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		t.Fatalf("want error containing %q, got %v%s", sub, err, msgOf(args))
	}
}
