package client

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The golden files in testdata pin the host key texts, which use
// OpenSSH's words so that people recognise them and scripts may grep for
// them. After a deliberate change, rewrite them with
//
//	go test ./client -run TestGolden -update
//
// and review the diff.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output; if the change is meant, run with -update.\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

func TestGoldenHostKeyTexts(t *testing.T) {
	const host = "chat.example.org:7777"
	var prompt bytes.Buffer
	ok, err := AskHostKey(strings.NewReader("maybe\nyes\n"), &prompt, host, "192.0.2.7", testFingerprint)
	if err != nil || !ok {
		t.Fatalf("AskHostKey = %v, %v; want true", ok, err)
	}
	checkGolden(t, "hostkey-prompt.golden", prompt.Bytes())
	checkGolden(t, "hostkey-added.golden", []byte(HostKeyAddedMessage(host)))
	checkGolden(t, "hostkey-changed.golden", []byte(HostKeyChangedMessage(host, testFingerprint, "/home/u/.config/securechat/known_hosts", 3)))
	checkGolden(t, "hostkey-revoked.golden", []byte(HostKeyRevokedMessage(host, testFingerprint, "/home/u/.config/securechat/known_hosts", 5)))
}
