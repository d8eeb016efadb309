// Package pinfile reads and changes the files in which the client pins
// keys, known_hosts and known_users: one key per line, OpenSSH style, with
// blank lines, '#' comments and @revoked lines.
//
// The one rule: a pin file is taken whole or not at all. Reading stops at
// the first line that does not parse (a file read in part could hide a pin
// or a revocation), and every change holds the file's lock
// ([atomicfile.Lock]), so an append is never lost to a removal that
// rewrites the file.
package pinfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"securechat/internal/atomicfile"
)

// RevokedMarker starts a line that revokes a key, as in OpenSSH's
// known_hosts.
const RevokedMarker = "@revoked"

// Open opens the file at path for reading. A missing file is no error: f
// is nil, an empty set of pins.
func Open(path string) (f *os.File, err error) {
	f, err = os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

// Scan calls parse with the number and the trimmed text of each line of r
// that is neither blank nor a comment, and stops at the first error. On
// error it returns the number of the line at fault.
func Scan(r io.Reader, parse func(line int, text string) error) (line int, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if err := parse(line, text); err != nil {
			return line, err
		}
	}
	if err := sc.Err(); err != nil {
		return line + 1, err
	}
	return 0, nil
}

// CutMarker splits text into fields and takes off a leading @revoked,
// reporting whether it was there. Any other marker is an error.
func CutMarker(text string) (fields []string, revoked bool, err error) {
	fields = strings.Fields(text)
	if len(fields) == 0 || !strings.HasPrefix(fields[0], "@") {
		return fields, false, nil
	}
	if fields[0] != RevokedMarker {
		return nil, false, fmt.Errorf("unknown marker %q (only %s is known)", fields[0], RevokedMarker)
	}
	return fields[1:], true, nil
}

// Append adds one line to the file at path under its lock, creating the
// file (0600, its directory 0700) if need be. line gets the file as it is
// now and returns the text to add, without its newline, or "" to add
// nothing. A file whose last line lacks its newline gets one first, so
// the new line is not glued onto it. Append returns the number the added
// line has in the file, 0 if none was added.
func Append(path string, line func(existing []byte) (string, error)) (lineNo int, err error) {
	unlock, err := atomicfile.Lock(path)
	if err != nil {
		return 0, err
	}
	defer unlock()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	existing, err := io.ReadAll(f)
	if err != nil {
		return 0, err
	}
	text, err := line(existing)
	if err != nil || text == "" {
		return 0, err
	}
	lineNo = bytes.Count(existing, []byte("\n")) + 1
	text += "\n"
	if len(existing) > 0 && existing[len(existing)-1] != '\n' {
		text = "\n" + text
		lineNo++
	}
	if _, err := f.WriteString(text); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return lineNo, nil
}

// Removed is one line that Remove took out of a file.
type Removed struct {
	Line int    // its number in the file before
	Text string // the line, without its line break
}

// Remove takes out of the file at path, under its lock, every line whose
// first field is name, and returns them. Everything else stays as it was,
// @revoked lines included (their first field is the marker): a revocation
// is undone only by editing the file. The file is replaced atomically and
// keeps mode 0600; nothing is written when no line matches. A missing file
// is an error (fs.ErrNotExist).
func Remove(path, name string) ([]Removed, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	unlock, err := atomicfile.Lock(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kept strings.Builder
	var removed []Removed
	for i, line := range strings.SplitAfter(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			removed = append(removed, Removed{Line: i + 1, Text: strings.TrimRight(line, "\r\n")})
			continue
		}
		kept.WriteString(line)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := atomicfile.Replace(path, []byte(kept.String())); err != nil {
		return nil, err
	}
	return removed, nil
}
