package client

import "errors"

// The kinds of failure a caller may want to tell apart: the command line
// gives each its own exit code. Match them with errors.Is on any error the
// package returns.
var (
	// ErrAuthFailed: the server refused the login (a wrong password, an
	// unknown account, a ban).
	ErrAuthFailed = errors.New("authentication failed")
	// ErrServerNotAuthenticated: the server could not prove it is the one
	// trusted (an unknown, changed or revoked host key, or a bad signature
	// or FINISHED). It is never retried.
	ErrServerNotAuthenticated = errors.New("server not authenticated")
	// ErrConnectionLost: the connection could not be made or ended without
	// the user asking. Reconnecting may help.
	ErrConnectionLost = errors.New("connection lost")
	// ErrInterrupted: the user pressed Ctrl-C at a prompt (the host key
	// question, Password:), which ends the client at once, as in ssh.
	ErrInterrupted = errors.New("interrupted")
)

// Error is an error of the client with its kind (one of the Err values
// above, or nil for any other failure) and an optional hint for the user,
// one line saying what to try.
type Error struct {
	Kind error
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap lets errors.Is and errors.As see both the cause and the kind.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Kind}
}

// fail wraps err as an Error of kind, with hint ("" for none).
func fail(kind, err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: kind, Err: err, Hint: hint}
}

// Hint returns the hint attached to err, or "".
func Hint(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}
