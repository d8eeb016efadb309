// Package cmderr marks errors with what the command line needs to report
// them: whether the command was called wrongly (a usage mistake) and a hint
// line saying what to try.
//
// Its one rule: packages below the command line describe a failure with
// these marks and never pick an exit code; package main alone turns them
// into exit codes.
package cmderr

import (
	"errors"
	"fmt"
)

// Error is an error with its marks.
type Error struct {
	Err error
	// Usage: the command line was wrong (a flag value, a missing argument).
	Usage bool
	// Hint is one line for the user saying what to try, or "".
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Usagef is a usage mistake described by format and args.
func Usagef(format string, args ...any) error {
	return &Error{Err: fmt.Errorf(format, args...), Usage: true}
}

// UsageHint marks err as a usage mistake, with a hint ("" for none).
func UsageHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, Usage: true, Hint: hint}
}

// WithHint attaches a hint line to err ("" for none); err is not a usage
// mistake.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, Hint: hint}
}

// IsUsage reports whether err is, or wraps, a usage mistake.
func IsUsage(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Usage
}

// Hint returns the hint attached to err, or "".
func Hint(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}
