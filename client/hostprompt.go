package client

// Host key prompts use OpenSSH's wording for the lines users already know
// (and may grep for): the first-contact question, the "Permanently added"
// note, and the changed-key banner ending in "Host key verification failed."

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"
	"securechat/client/tui"
)

// maxHostKeyAnswers bounds how often AskHostKey asks before giving up, so a
// stream of garbage on the terminal cannot loop forever.
const maxHostKeyAnswers = 5

// maxAnswerLen bounds one typed answer; a fingerprint is 50 bytes.
const maxAnswerLen = 1024

// hostKeyType is the only host key algorithm securechat uses.
const hostKeyType = "ED25519"

// displayHost shortens and sanitises a host name for the prompts, as
// OpenSSH does with %.200s.
func displayHost(host string) string {
	host = tui.Sanitize(host)
	if len(host) > 200 {
		host = strings.ToValidUTF8(host[:200], "")
	}
	return host
}

// AskHostKey asks whether to trust a host key seen for the first time. in
// should be the terminal (/dev/tty), not standard input, which may be a
// script. "yes" (in any case) or the exact fingerprint accepts, "no"
// refuses; anything else is asked again, up to maxHostKeyAnswers answers.
// It does not print the "Permanently added" note: the caller prints
// HostKeyAddedMessage once the key is really recorded. The end of input
// without an answer is an error, not a refusal, so the caller can say why.
// addr is shown in parentheses after host (OpenSSH shows the IP address);
// "" leaves it out.
func AskHostKey(in io.Reader, out io.Writer, host, addr, fingerprint string) (bool, error) {
	host = displayHost(host)
	who := host
	if addr = tui.Sanitize(addr); addr != "" {
		who = host + " (" + addr + ")"
	}
	fmt.Fprintf(out, "The authenticity of host '%s' can't be established.\n", who)
	fmt.Fprintf(out, "%s key fingerprint is %s.\n", hostKeyType, tui.Sanitize(fingerprint))
	fmt.Fprint(out, "Are you sure you want to continue connecting (yes/no/[fingerprint])? ")
	for tries := 1; ; tries++ {
		answer, err := readAnswer(in)
		if err != nil {
			fmt.Fprintln(out)
			if errors.Is(err, io.EOF) {
				return false, errors.New("host key not confirmed: no answer before end of input")
			}
			return false, fmt.Errorf("host key not confirmed: %w", err)
		}
		answer = strings.TrimSpace(answer)
		switch {
		case strings.EqualFold(answer, "yes") || (fingerprint != "" && answer == fingerprint):
			return true, nil
		case strings.EqualFold(answer, "no"):
			return false, nil
		}
		if strings.HasPrefix(strings.ToUpper(answer), "SHA256:") {
			fmt.Fprintln(out, "That fingerprint does not match the key the server sent.")
		}
		if tries >= maxHostKeyAnswers {
			return false, errors.New("host key not confirmed: too many invalid answers")
		}
		fmt.Fprint(out, "Please type 'yes', 'no' or the fingerprint: ")
	}
}

// readAnswer reads one line, a byte at a time so that nothing after the
// newline is consumed from a shared reader. A final line without a newline
// counts; io.EOF is returned only when nothing was read.
func readAnswer(in io.Reader) (string, error) {
	var b strings.Builder
	var c [1]byte
	for {
		n, err := in.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			if b.Len() < maxAnswerLen {
				b.WriteByte(c[0])
			}
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && b.Len() > 0 {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			return "", err
		}
	}
}

// HostKeyAddedMessage is the note printed once a new host key is recorded
// (also by the accept-new policy, which does not ask).
func HostKeyAddedMessage(host string) string {
	return "Warning: Permanently added '" + displayHost(host) + "' (" + hostKeyType + ") to the list of known hosts.\n"
}

// HostKeyChangedMessage is the text shown, on standard error, when a host
// presents a key other than the one recorded for it at file:line. The
// connection must then be refused; the text ends in OpenSSH's
// "Host key verification failed." line.
func HostKeyChangedMessage(host, fingerprint, file string, line int) string {
	host = displayHost(host)
	file = tui.Sanitize(file)
	loc := file + ":" + strconv.Itoa(line)
	var b strings.Builder
	b.WriteString("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n")
	b.WriteString("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n")
	b.WriteString("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n")
	b.WriteString("IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n")
	b.WriteString("The server at '" + host + "' sent a different host key from the one recorded for it.\n")
	b.WriteString("Either this connection is being intercepted (a machine-in-the-middle attack),\n")
	b.WriteString("or the server's host key was replaced.\n")
	b.WriteString("The " + hostKeyType + " key fingerprint the server sent is\n")
	b.WriteString(tui.Sanitize(fingerprint) + ".\n")
	b.WriteString("Check it with the server's operator over a channel you trust.\n")
	b.WriteString("Offending " + hostKeyType + " key in " + loc + "\n")
	b.WriteString("  If the new key is genuine, delete line " + strconv.Itoa(line) + " of " + file + " and connect again\n")
	b.WriteString("  (securechat known-hosts remove " + host + " removes every line for it).\n")
	b.WriteString("Host key verification failed.\n")
	return b.String()
}

// HostKeyRevokedMessage is the text shown, on standard error, when a host
// presents a key that known_hosts marks @revoked at file:line. Nothing
// overrides it: a revoked key is one its owner said was lost or stolen.
func HostKeyRevokedMessage(host, fingerprint, file string, line int) string {
	host = displayHost(host)
	loc := tui.Sanitize(file) + ":" + strconv.Itoa(line)
	var b strings.Builder
	b.WriteString("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n")
	b.WriteString("@       WARNING: REVOKED HOST KEY DETECTED!               @\n")
	b.WriteString("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n")
	b.WriteString("The server at '" + host + "' presented the " + hostKeyType + " key\n")
	b.WriteString(tui.Sanitize(fingerprint) + ",\n")
	b.WriteString("which is REVOKED by " + loc + ". Whoever holds it may be impersonating\n")
	b.WriteString("the server. Refusing to connect.\n")
	b.WriteString("Host key verification failed.\n")
	return b.String()
}

// ttyPath is the controlling terminal; tests point it elsewhere.
var ttyPath = "/dev/tty"

// readPasswordTTY prompts on the controlling terminal and reads a password
// without echo. It uses the terminal, not standard input, so that piped
// input (script mode) still works; with no terminal it fails with an error
// saying so. The prompt line is erased afterwards.
func readPasswordTTY(prompt string) ([]byte, error) {
	return ReadPassword(context.Background(), prompt)
}

// ReadPassword is readPasswordTTY that gives up when ctx is done,
// restoring the terminal's echo. Needed because while the process catches
// SIGINT, Ctrl-C at the prompt does not end the read; the abandoned read
// ends with the next Enter or the process.
func ReadPassword(ctx context.Context, prompt string) ([]byte, error) {
	tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot ask for the password: no terminal (%v)", err)
	}
	// Fd puts the file in blocking mode, which term.ReadPassword needs.
	fd := int(tty.Fd())
	if !term.IsTerminal(fd) {
		tty.Close()
		return nil, fmt.Errorf("cannot ask for the password: %s is not a terminal", ttyPath)
	}
	state, err := term.GetState(fd)
	if err != nil {
		tty.Close()
		return nil, fmt.Errorf("cannot ask for the password: %v", err)
	}
	if _, err := io.WriteString(tty, prompt); err != nil {
		tty.Close()
		return nil, fmt.Errorf("cannot ask for the password: %v", err)
	}

	type result struct {
		pw  []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The goroutine owns tty: it may outlive the call when ctx ends
		// first, and closing the descriptor under a blocked read is unsafe.
		pw, err := term.ReadPassword(fd)
		io.WriteString(tty, "\r\x1b[K")
		tty.Close()
		done <- result{pw, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("cannot read the password: %v", r.err)
		}
		return r.pw, nil
	case <-ctx.Done():
		term.Restore(fd, state)
		io.WriteString(tty, "\r\n")
		return nil, interrupted()
	}
}
