#!/usr/bin/python3
"""Recompute the x25519 session of PROTOCOL.md §15 with interop/scclient.py.

The vectors are parsed out of PROTOCOL.md itself, so this checks the text a
reader implements from, not only the JSON copy (which is compared as well).
Every value is rebuilt from the inputs and compared byte for byte; any
difference exits non-zero.

Run from the repository root or anywhere: python3 interop/test_vectors.py
"""

import hashlib
import json
import os
import re
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scclient as sc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "PROTOCOL.md")
JSON_COPY = os.path.join(ROOT, "handshake", "testdata", "vectors_x25519.json")

RECORD_TYPES = {
    "FINISHED": sc.REC_FINISHED,
    "AUTH": sc.REC_AUTH,
    "AUTH_RESULT": sc.REC_AUTH_RESULT,
    "APP": sc.REC_APP,
}


def parse_spec(path):
    """Read the first code block of §15 into a dict like the JSON copy."""
    text = open(path, encoding="utf-8").read()
    section = text.split("## 15. Test vectors", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1].split("\n", 1)[1]

    kv, records = {}, []
    multi = None  # name of a value continued on indented hex lines
    rec = None
    for line in block.split("\n"):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        s = line.strip()
        if rec is not None:
            # Inside the records list: "  dir seq N TYPE", "    iv HEX", ...
            m = re.fullmatch(r"(c2s|s2c) seq (\d+) (\w+)", s)
            if indent == 2 and m:
                rec = {"direction": m[1], "seq": int(m[2]), "type": m[3], "record": ""}
                records.append(rec)
            elif indent == 4 and s == "record:":
                pass
            elif indent == 4:
                k, v = s.split(None, 1)
                rec[k] = v
            elif indent == 6:
                rec["record"] += s
            else:
                raise ValueError("unexpected line in §15 records: %r" % line)
            continue
        if s.startswith("records ("):
            rec = {}
            multi = None
            continue
        if indent == 4 and multi:
            kv[multi] += s
            continue
        m = re.fullmatch(r"([a-z0-9_]+):", s)
        if m and indent == 0:
            multi = m[1]
            kv[multi] = ""
            continue
        m = re.fullmatch(r"([a-z0-9_]+) {2,}(.*)", line.rstrip("\n"))
        if m:
            kv[m[1]] = m[2].strip()
            multi = None
            continue
        # The two title lines of the block.
        if s.startswith("securechat v1 "):
            continue
        raise ValueError("unparsed line in §15: %r" % line)
    kv["records"] = records
    return kv


class Checker:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def eq(self, name, got, want):
        if isinstance(got, bytes):
            got = got.hex()
        if isinstance(want, bytes):
            want = want.hex()
        if got == want:
            self.passed += 1
        else:
            self.failed += 1
            print("MISMATCH %s\n  computed %s\n  expected %s" % (name, got, want))

    def true(self, name, cond):
        self.eq(name, bool(cond), True)


def raises(fn, *a):
    try:
        fn(*a)
    except sc.ProtocolError:
        return True
    return False


def main():
    v = parse_spec(SPEC)
    c = Checker()
    h = bytes.fromhex

    # The spec and its JSON copy must agree on every field both carry.
    j = json.load(open(JSON_COPY, encoding="utf-8"))
    for k, want in j.items():
        if k in ("comment", "records"):
            continue
        c.eq("PROTOCOL.md vs JSON: " + k, v.get(k), want)
    c.eq("PROTOCOL.md vs JSON: record count", len(v["records"]), len(j["records"]))
    for a, b in zip(v["records"], j["records"]):
        for k in ("direction", "seq", "type", "iv", "plaintext", "record"):
            c.eq("PROTOCOL.md vs JSON: record %s %s %s" % (a["direction"], a["seq"], k), a[k], b[k])

    # Inputs: SHA-256("securechat v1 test vector " || name). The name is the
    # field name with "_" read as a space; record IVs are the first 16 bytes
    # of the hash for "record iv N", N counting records in the listed order.
    def vec(name):
        return hashlib.sha256(b"securechat v1 test vector " + name.encode()).digest()

    for k in ("client_random", "client_x25519_private", "server_random",
              "server_x25519_private", "host_key_seed"):
        c.eq("input rule: " + k, vec(k.replace("_", " ")), h(v[k]))
    for i, r in enumerate(v["records"]):
        c.eq("input rule: record iv %d" % i, vec("record iv %d" % i)[:16], h(r["iv"]))

    c.eq("group", v["group"], "x25519")
    c.eq("transport", v["transport"], "tcp")
    cb = h(v["channel_binding"])
    c.eq("channel binding is empty", cb, b"")

    # Public keys and fingerprint.
    cpriv, spriv = h(v["client_x25519_private"]), h(v["server_x25519_private"])
    c.eq("client_x25519_public", sc.x25519_public(cpriv), h(v["client_x25519_public"]))
    c.eq("server_x25519_public", sc.x25519_public(spriv), h(v["server_x25519_public"]))
    host = Ed25519PrivateKey.from_private_bytes(h(v["host_key_seed"]))
    host_pub = host.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    c.eq("host_public_key", host_pub, h(v["host_public_key"]))
    c.eq("host_key_fingerprint", sc.fingerprint(host_pub), v["host_key_fingerprint"])

    # CLIENT_HELLO as the client builds it.
    ch = sc.build_client_hello(h(v["client_random"]), sc.x25519_public(cpriv), v["transport"])
    c.eq("client_hello", ch, h(v["client_hello"]))

    # SERVER_HELLO as a server would build it from §5.2 and §7.2; Ed25519 is
    # deterministic, so the signature must come out identical.
    def sh_frame(signature):
        body = (
            b"\x00\x01" + h(v["server_random"]) + b"\x00\x1d"
            + sc.opaque16(sc.x25519_public(spriv)) + b"\x08\x07"
            + sc.opaque16(host_pub) + sc.opaque16(b"") + sc.opaque16(signature)
        )
        return sc.frame(sc.FRAME_SERVER_HELLO, body)

    placeholder = sh_frame(bytes(64))  # the header length already counts the signature
    c.eq("transcript_prefix", sc.transcript_prefix(cb), h(v["transcript_prefix"]))
    shash = sc.signed_hash(ch, placeholder, cb)
    c.eq("signed_hash", shash, h(v["signed_hash"]))
    sig = host.sign(sc.signature_input(shash))
    c.eq("signature", sig, h(v["signature"]))
    sh = sh_frame(sig)
    c.eq("server_hello", sh, h(v["server_hello"]))

    # The client's view of the stored SERVER_HELLO.
    sh_v = h(v["server_hello"])
    parsed = sc.parse_server_hello(sh_v[4:])
    c.eq("parsed host_key", parsed["host_key"], host_pub)
    c.true("signature verifies", not raises(
        sc.verify_server_signature, parsed["host_key"], parsed["signature"], ch, sh_v, cb))
    bad = bytearray(sh_v)
    bad[10] ^= 1
    c.true("signature fails on a changed server_random",
           raises(sc.verify_server_signature, parsed["host_key"], parsed["signature"], ch, bytes(bad), cb))

    # Shared secret, both sides.
    ss_c = sc.x25519_shared(cpriv, parsed["key_share"])
    ss_s = sc.x25519_shared(spriv, sc.x25519_public(cpriv))
    c.eq("shared_secret (client)", ss_c, h(v["shared_secret"]))
    c.eq("shared_secret (server)", ss_s, h(v["shared_secret"]))
    c.true("all-zero x25519 result rejected", raises(sc.x25519_shared, cpriv, bytes(32)))

    # Key schedule.
    th = sc.transcript_hash(ch, sh_v, cb)
    c.eq("transcript_hash", th, h(v["transcript_hash"]))
    ks = sc.KeySchedule(ss_c, th)
    for k in ("prk", "c2s_secret_0", "s2c_secret_0", "fin_c", "fin_s", "session_id"):
        c.eq(k, getattr(ks, k), h(v[k]))
    for d in ("c2s", "s2c"):
        enc, mac, nxt = sc.generation_keys(getattr(ks, d + "_secret_0"))
        c.eq(d + "_enc_key_0", enc, h(v[d + "_enc_key_0"]))
        c.eq(d + "_mac_key_0", mac, h(v[d + "_mac_key_0"]))
        c.eq(d + "_secret_1", nxt, h(v[d + "_secret_1"]))
    c.eq("server_finished", ks.server_finished(), h(v["server_finished"]))
    c.eq("client_finished", ks.client_finished(), h(v["client_finished"]))

    # Payloads the records should carry.
    expected_pt = {
        ("s2c", "FINISHED"): ks.server_finished(),
        ("c2s", "FINISHED"): ks.client_finished(),
        ("c2s", "AUTH"): sc.auth_payload(v["user"], v["password"]),
        ("s2c", "AUTH_RESULT"): b"\x00",
    }

    # Records: the sender's direction seals with the given IV; a separate
    # receiver's direction opens in order, as the peer would.
    secrets = {"c2s": ks.c2s_secret_0, "s2c": ks.s2c_secret_0}
    sealers = {d: sc.Direction(s) for d, s in secrets.items()}
    openers = {d: sc.Direction(s) for d, s in secrets.items()}
    for r in v["records"]:
        d, name = r["direction"], "record %s seq %d %s" % (r["direction"], r["seq"], r["type"])
        pt = h(r["plaintext"])
        if (d, r["type"]) in expected_pt:
            c.eq(name + " plaintext", pt, expected_pt[(d, r["type"])])
        c.eq(name + " seq", sealers[d].seq, r["seq"])
        sealed = sealers[d].seal(RECORD_TYPES[r["type"]], pt, iv=h(r["iv"]))
        c.eq(name, sealed, h(r["record"]))

        rec = h(r["record"])
        rtype, _ = sc.check_record_header(rec[:5])
        c.eq(name + " header type", rtype, RECORD_TYPES[r["type"]])

        # Tamper checks on copies, so the real opener's seq is untouched.
        other = "s2c" if d == "c2s" else "c2s"
        wrong_dir = sc.Direction(secrets[other])
        wrong_dir.seq = r["seq"]
        c.true(name + " fails in the other direction", raises(wrong_dir.open, rec[:5], rec[5:]))
        wrong_seq = sc.Direction(secrets[d])
        wrong_seq.seq = r["seq"] + 1
        c.true(name + " fails at another seq", raises(wrong_seq.open, rec[:5], rec[5:]))
        for pos in (0, 5, 5 + 16, len(rec) - 1):  # type, IV, CT, TAG
            flipped = bytearray(rec)
            flipped[pos] ^= 0x80
            probe = sc.Direction(secrets[d])
            probe.seq = r["seq"]
            c.true("%s fails with byte %d flipped" % (name, pos),
                   raises(probe.open, bytes(flipped[:5]), bytes(flipped[5:])))

        try:
            opened = openers[d].open(rec[:5], rec[5:])
        except sc.ProtocolError as e:
            opened = "error: %s" % e
        c.eq(name + " opens", opened, pt)

    # Header bounds of §9.2 step 1.
    for length, ok in ((31, False), (32, True), (40, False), (16416, True), (16432, False)):
        hdr = bytes([sc.REC_APP]) + length.to_bytes(4, "big")
        c.eq("length %d accepted" % length, not raises(sc.check_record_header, hdr), ok)

    print("%d checks passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
