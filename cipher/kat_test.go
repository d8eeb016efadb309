package cipher

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

type katFile struct {
	Secret0 string            `json:"secret0"`
	Gen0    map[string]string `json:"gen0"`
	Gen1    map[string]string `json:"gen1"`
	Records []struct {
		Gen     int    `json:"gen"`
		Seq     uint64 `json:"seq"`
		Type    uint8  `json:"type"`
		IV      string `json:"iv"`
		Payload string `json:"payload"`
		Record  string `json:"record"`
	} `json:"records"`
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecordKnownAnswers checks key derivation and sealing against
// testdata/record_kat.json, which OpenSSL produced (see make_kat.sh), and
// opens the same bytes again.
func TestRecordKnownAnswers(t *testing.T) {
	raw, err := os.ReadFile("testdata/record_kat.json")
	if err != nil {
		t.Fatal(err)
	}
	var kat katFile
	if err := json.Unmarshal(raw, &kat); err != nil {
		t.Fatal(err)
	}
	if len(kat.Records) != 4 {
		t.Fatalf("record_kat.json has %d records, want 4", len(kat.Records))
	}
	secret0 := unhex(t, kat.Secret0)

	enc, mac, next := DeriveKeys(secret0)
	for name, got := range map[string][32]byte{"enc": enc, "mac": mac, "next": next} {
		if want := unhex(t, kat.Gen0[name]); !bytes.Equal(got[:], want) {
			t.Errorf("gen0 %s = %x, want %x", name, got, want)
		}
	}
	enc, mac, next = DeriveKeys(next[:])
	for name, got := range map[string][32]byte{"enc": enc, "mac": mac, "next": next} {
		if want := unhex(t, kat.Gen1[name]); !bytes.Equal(got[:], want) {
			t.Errorf("gen1 %s = %x, want %x", name, got, want)
		}
	}

	sender := New(nil, secret0, testS2C, nil)
	receiver := New(newReaderConn(nil), testC2S, secret0, nil)
	receiver.SetEstablished()
	lim := receiver.lim
	gen := 0
	for i, r := range kat.Records {
		if r.Gen != gen {
			sender.out.rotate()
			receiver.in.rotate()
			gen = r.Gen
		}
		if sender.out.seq != r.Seq {
			t.Fatalf("record %d: sender seq %d, want %d", i, sender.out.seq, r.Seq)
		}
		payload := unhex(t, r.Payload)
		want := unhex(t, r.Record)
		got := sender.out.sealWithIV(nil, RecordType(r.Type), payload, unhex(t, r.IV))
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got %x\nwant %x", i, got, want)
		}
		typ, opened, ok := receiver.in.open(bytes.Clone(want), &lim)
		if !ok || typ != RecordType(r.Type) || !bytes.Equal(opened, payload) {
			t.Fatalf("record %d: open = %v %x %v, want %v %x", i, typ, opened, ok, RecordType(r.Type), payload)
		}
	}
}
