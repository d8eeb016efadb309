package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"securechat/handshake"
)

func TestKeygenAndFingerprint(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"securechat", "keygen", "--state-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("keygen exit %d: %s", code, errOut.String())
	}
	fp := out.String()
	if !regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}\n$`).MatchString(fp) {
		t.Fatalf("keygen printed %q, want one SHA256: fingerprint", fp)
	}
	info, err := os.Stat(filepath.Join(dir, handshake.HostKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %o, want 600", info.Mode().Perm())
	}

	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"securechat", "keygen", "--state-dir", dir}, &out, &errOut); code != exitError {
		t.Fatalf("second keygen exit %d, want %d (refuse to overwrite)", code, exitError)
	}
	if !bytes.Contains(errOut.Bytes(), []byte("refusing to overwrite")) {
		t.Fatalf("second keygen said %q", errOut.String())
	}

	out.Reset()
	if code := run(context.Background(), []string{"securechat", "fingerprint", "--state-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("fingerprint exit %d: %s", code, errOut.String())
	}
	if out.String() != fp {
		t.Fatalf("fingerprint printed %q, keygen printed %q", out.String(), fp)
	}

	if code := run(context.Background(), []string{"securechat", "fingerprint", "extra"}, &out, &errOut); code != exitUsage {
		t.Fatalf("fingerprint with an argument exit %d, want %d", code, exitUsage)
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"securechat", "frobnicate"}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitUsage, errOut.String())
	}
	if !bytes.Contains(errOut.Bytes(), []byte("securechat: error: ")) {
		t.Fatalf("stderr %q lacks the error prefix", errOut.String())
	}
}
