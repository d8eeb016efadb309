package msgsig_test

import (
	"testing"

	"securechat/chat"
)

// FuzzSanitizeIsIdempotent backs a promise of PROTOCOL.md §13.16.2: a
// client that signs the text after sanitising it itself sends a text the
// server's sanitising leaves as it is, so the signature survives.
func FuzzSanitizeIsIdempotent(f *testing.F) {
	for _, s := range []string{
		"hello", "a\tb\nc\r\n", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07x", "\x1b]unterminated",
		"\u009b31m", "\u202eevil\u202c", "\u2028\u2029", "\x1b\x1b[", "\x1bP\x1b\\", "\u200e\u200f\u061c",
		"x\x00y\x7fz\u0085", "\x1b[\x1b[1m",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := chat.SanitizeText(s)
		if twice := chat.SanitizeText(once); twice != once {
			t.Errorf("SanitizeText(%q) = %q, and again %q", s, once, twice)
		}
	})
}
