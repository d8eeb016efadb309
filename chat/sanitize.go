package chat

import (
	"strings"
	"unicode/utf8"
)

// SanitizeText returns s made safe to print on a terminal as one line:
//
//   - invalid UTF-8 bytes become U+FFFD;
//   - a TAB, LF, CR, U+2028 or U+2029 becomes a space;
//   - whole escape sequences are removed: ESC (0x1B) or its C1 form
//     (U+009B CSI, U+009D OSC, U+0090 DCS, U+0098 SOS, U+009E PM, U+009F APC)
//     with everything up to the end of the sequence (CSI parameters and
//     final byte; the string of OSC/DCS/SOS/PM/APC up to BEL, ESC \ or
//     U+009C, or to the end of s when unterminated);
//   - every other C0 control (U+0000–U+001F), DEL (U+007F) and C1 control
//     (U+0080–U+009F) is removed;
//   - the bidirectional embedding, override and isolate controls
//     U+202A–U+202E and U+2066–U+2069 are removed (Trojan Source,
//     CVE-2021-42574). The marks U+200E, U+200F and U+061C stay: they cannot
//     reorder text outside their own line segment.
//
// The result is never longer than s when s is valid UTF-8, and
// SanitizeText(SanitizeText(s)) == SanitizeText(s). The server applies it to
// every text before storing or sending it; clients should apply it again to
// whatever they print.
func SanitizeText(s string) string { return sanitize(s, false) }

// SanitizeMultiline is SanitizeText except that LF is kept (and CR
// dropped), for texts that may span lines such as the MOTD.
func SanitizeMultiline(s string) string { return sanitize(s, true) }

func sanitize(s string, multiline bool) string {
	if isPlainASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == 0x1b:
			i = skipEscape(s, i+1)
			continue
		case r == 0x9b: // 8-bit CSI
			i = skipCSI(s, i+size)
			continue
		case r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f: // 8-bit OSC, DCS, SOS, PM, APC
			i = skipString(s, i+size)
			continue
		case r == '\n' && multiline:
			b.WriteByte('\n')
		case r == '\t' || r == '\n' || r == 0x2028 || r == 0x2029 || (r == '\r' && !multiline):
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// skipEscape returns the index just past the escape sequence whose ESC
// ended at i (ECMA-48 §5.3 and §8.3.x).
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch c := s[i]; {
	case c == '[':
		return skipCSI(s, i+1)
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		return skipString(s, i+1)
	case c >= 0x20 && c <= 0x2f: // intermediate bytes, then one final byte
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e: // a two-byte sequence such as ESC c or ESC 7
		return i + 1
	}
	// ESC followed by a control or non-ASCII: drop only the ESC.
	return i
}

// skipCSI skips the parameter and intermediate bytes and the final byte of
// a control sequence starting at i. A byte that cannot be part of it ends
// the sequence and is then handled as ordinary input.
func skipCSI(s string, i int) int {
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipString skips a control string starting at i up to and including its
// terminator: BEL, ESC \ or U+009C (ST). Unterminated, it runs to the end.
func skipString(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == 0x07:
			return i + 1
		case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
			return i + 2
		case s[i] == 0xc2 && i+1 < len(s) && s[i+1] == 0x9c:
			return i + 2
		}
		i++
	}
	return i
}

// ValidUser reports whether name is a user name: 1 to 32 characters from
// [a-z0-9_.-], the account rule of PROTOCOL.md §10.2.
func ValidUser(name string) bool {
	if len(name) < 1 || len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return false
		}
	}
	return true
}

// ValidRoom reports whether name is a room name: "#" and then 1 to 32
// characters from [a-z0-9_.-], the first a letter or digit.
func ValidRoom(name string) bool {
	if len(name) < 2 || len(name) > 33 || name[0] != '#' {
		return false
	}
	if c := name[1]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
		return false
	}
	for i := 2; i < len(name); i++ {
		if !nameByte(name[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// foldName lower-cases ASCII letters only: names are compared
// case-insensitively and stored in lower case. Full Unicode case mapping
// would turn look-alikes such as U+212A KELVIN SIGN into ASCII letters.
func foldName(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
