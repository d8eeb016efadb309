#!/bin/sh
# Writes record_kat.json: known-answer records for PROTOCOL.md §8 and §9,
# computed with the OpenSSL 3 command line only (no securechat code), so the
# Go implementation is checked against an independent one.
#
#   sh make_kat.sh > record_kat.json
#
# Made once with OpenSSL 3.0.19; record_kat_test.go checks it byte for byte.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

hex() { od -An -v -tx1 | tr -d ' \n'; }
unhex() { printf '%s' "$1" | sed 's/../\\x&/g' | xargs -0 printf '%b'; }

# expand SECRET NAME: HKDF-Expand(SECRET, label(NAME, ""), 32), PROTOCOL.md §8.
expand() {
	full="securechat v1 $2"
	info=$(printf '%02x' "${#full}")$(printf '%s' "$full" | hex)00
	openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt mode:EXPAND_ONLY \
		-kdfopt hexkey:"$1" -kdfopt hexinfo:"$info" HKDF | tr -d ':\n' | tr 'A-F' 'a-f'
}

# record ENC MAC SEQ TYPE IV PAYLOAD: one sealed record as hex.
record() {
	unhex "$6" > "$tmp/pt"
	openssl enc -aes-256-cbc -K "$1" -iv "$5" -in "$tmp/pt" -out "$tmp/ct"
	ctlen=$(wc -c < "$tmp/ct")
	hdr=$(printf '%02x%08x' "$4" $((16 + ctlen)))
	body=$hdr$5$(hex < "$tmp/ct")
	{ printf 'SCv1 rec'; unhex "$(printf '%016x' "$3")"; unhex "$body"; } > "$tmp/macin"
	tag=$(openssl dgst -sha256 -mac HMAC -macopt hexkey:"$2" -binary < "$tmp/macin" | hex)
	printf '%s%s' "$body" "$tag"
}

secret0=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
enc0=$(expand $secret0 enc)
mac0=$(expand $secret0 mac)
next0=$(expand $secret0 next)
enc1=$(expand "$next0" enc)
mac1=$(expand "$next0" mac)
next1=$(expand "$next0" next)

fin=a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
hello=$(printf 'hello, securechat' | hex)
block=$(printf '0123456789abcdef' | hex)
iv1=f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff
iv2=00112233445566778899aabbccddeeff
iv3=0f0e0d0c0b0a09080706050403020100
iv4=8899aabbccddeeff0011223344556677

cat <<JSON
{
  "comment": "Known-answer records for PROTOCOL.md §8-§9, one direction. Made once by make_kat.sh with the OpenSSL 3.0.19 command line (openssl kdf HKDF, openssl enc -aes-256-cbc, openssl dgst -mac HMAC); record_kat_test.go checks it byte for byte. Records 1-3 use generation 0 (seq 0, 1, 2; record 3 is KEY_UPDATE), record 4 uses generation 1 (seq 0).",
  "secret0": "$secret0",
  "gen0": {"enc": "$enc0", "mac": "$mac0", "next": "$next0"},
  "gen1": {"enc": "$enc1", "mac": "$mac1", "next": "$next1"},
  "records": [
    {"gen": 0, "seq": 0, "type": 16, "iv": "$iv1", "payload": "$fin", "record": "$(record "$enc0" "$mac0" 0 16 $iv1 "$fin")"},
    {"gen": 0, "seq": 1, "type": 32, "iv": "$iv2", "payload": "$hello", "record": "$(record "$enc0" "$mac0" 1 32 $iv2 "$hello")"},
    {"gen": 0, "seq": 2, "type": 19, "iv": "$iv3", "payload": "", "record": "$(record "$enc0" "$mac0" 2 19 $iv3 "")"},
    {"gen": 1, "seq": 0, "type": 32, "iv": "$iv4", "payload": "$block", "record": "$(record "$enc1" "$mac1" 0 32 $iv4 "$block")"}
  ]
}
JSON
