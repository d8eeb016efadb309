#!/usr/bin/python3
"""Recompute every test vector of PROTOCOL.md §15 from the specification.

The vectors live in one machine-readable file, vectors/securechat-v1.json,
which the specification names. This script rebuilds every value in it from
the session's fixed inputs with interop/scclient.py (framing, key schedule,
record layer), interop/mlkem768.py (ML-KEM-768 written from FIPS 203) and
Python's own X25519, Ed25519 and big integers; nothing comes from the Go
implementation. It also checks that the text of PROTOCOL.md shows the same
values: the ffdhe3072 prime of §6 (rebuilt from the RFC 7919 formula too),
the session table of §15 and the x25519 session written out there.

Any difference exits non-zero.

  python3 interop/test_vectors.py            check
  python3 interop/test_vectors.py --render   print the §15 table and block
                                             and the §6 prime from the JSON
"""

import base64
import copy
import hashlib
import json
import os
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlkem768  # noqa: E402
import scclient as sc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "PROTOCOL.md")
VECTORS_NAME = "vectors/securechat-v1.json"
VECTORS = os.path.join(ROOT, VECTORS_NAME)
SPEC_SESSION = "x25519-tcp"  # the session PROTOCOL.md §15 writes out

INPUT_PREFIX = b"securechat v1 test vector "

GROUPS = {"x25519": 0x001D, "mlkem768x25519": 0x11EC, "ffdhe3072": 0x0101}
RECORD_TYPES = {name: t for t, name in sc.REC_NAMES.items()}


# --- the ffdhe3072 prime (§6) ----------------------------------------------


def rfc7919_prime():
    """p = 2^3072 - 2^3008 + {[2^2942 * e] + 2625351} * 2^64 - 1 (RFC 7919 A.2).

    floor(2^2942 * e) is the sum of 2^2942 / k! over k, computed with 64
    guard bits so that the truncations cannot add up to a carry.
    """
    guard = 64
    term, total, k = 1 << (2942 + guard), 0, 1
    while term:
        total += term
        term //= k
        k += 1
    e_part = total >> guard
    return (1 << 3072) - (1 << 3008) + (e_part + 2625351) * (1 << 64) - 1


def is_probable_prime(n, rounds=16):
    """Miller-Rabin with fixed small bases (enough for a check, not for keys)."""
    if n < 2:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)[:rounds]:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


# --- rendering the spec's copy ---------------------------------------------


def render_prime(p):
    """The prime as §6 shows it: 8-digit groups, 8 groups a line."""
    digits = "%0768X" % p
    groups = [digits[i : i + 8] for i in range(0, len(digits), 8)]
    return "\n".join("    " + " ".join(groups[i : i + 8]) for i in range(0, len(groups), 8))


def render_table(vectors):
    lines = [
        "| session | group | transport | channel binding | transcript hash `TH` |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in vectors["sessions"]:
        cb = "%d bytes" % (len(s["channel_binding"]) // 2) if s["channel_binding"] else "empty"
        lines.append("| `%s` | `%s` | `%s` | %s | `%s` |" % (
            s["name"], s["group"], s["transport"], cb, s["transcript_hash"]))
    return "\n".join(lines)


SKIP_IN_BLOCK = ("name", "comment", "inputs", "records")


def hex_lines(value, indent):
    return ["%s%s" % (" " * indent, value[i : i + 64]) for i in range(0, len(value), 64)]


def render_block(s):
    """One session written out, as in the §15 code block."""
    out = [
        "securechat v1 test vectors, session %s of %s" % (s["name"], VECTORS_NAME),
        s["comment"],
        "",
    ]
    for k, v in s.items():
        if k in SKIP_IN_BLOCK:
            continue
        if len(v) > 64:
            out.append(k + ":")
            out.extend(hex_lines(v, 4))
        else:
            out.append(("%-24s %s" % (k, v)).rstrip())
    out.append("")
    out.append("records (type u8 | length u32 | IV | CT | TAG), in the order sent:")
    for r in s["records"]:
        out.append("  %s gen %d seq %d %s" % (r["direction"], r["generation"], r["seq"], r["type"]))
        out.append("    iv        %s" % r["iv"])
        out.append("    plaintext %s" % (r["plaintext"] or "(empty)"))
        out.append("    record:")
        out.extend(hex_lines(r["record"], 6))
    return "\n".join(out)


def spec_section(text, heading):
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def spec_code_blocks(section):
    parts = section.split("```")
    return [parts[i].split("\n", 1)[1].rstrip("\n") for i in range(1, len(parts), 2)]


# --- checks -------------------------------------------------------------


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
    except (sc.ProtocolError, ValueError):
        return True
    return False


def input_value(label, size):
    if size == 32:
        return hashlib.sha256(INPUT_PREFIX + label.encode()).digest()
    if 32 < size <= 64:
        return hashlib.sha512(INPUT_PREFIX + label.encode()).digest()[:size]
    raise ValueError("input size %d" % size)


def ffdhe_public(x, p):
    y = pow(2, x, p)
    if not 1 < y < p - 1:
        raise sc.ProtocolError("ffdhe: public value out of range")
    return y.to_bytes(384, "big")


def ffdhe_shared(x, peer, p):
    y = int.from_bytes(peer, "big")
    if len(peer) != 384 or not 1 < y < p - 1:
        raise sc.ProtocolError("ffdhe: peer value out of range")
    k = pow(y, x, p)
    if k in (1, p - 1):
        raise sc.ProtocolError("ffdhe: shared value in the small subgroup")
    return k.to_bytes(384, "big")


def check_session(c, s, p):
    """Rebuild one session from its inputs; every value must match."""
    name = s["name"]
    h = bytes.fromhex

    def eq(field, got, want=None):
        c.eq("%s: %s" % (name, field), got, s[field] if want is None else want)

    # Inputs: the rule of §15, each field named with its label.
    for ref in s["inputs"]:
        eq("input " + ref["field"], input_value(ref["label"], ref["size"]), h(s[ref["field"]]))
    for r in s["records"]:
        eq("record iv " + r["iv_label"], input_value(r["iv_label"], 32)[:16], h(r["iv"]))

    group = s["group"]
    cb = h(s["channel_binding"])
    eq("channel binding by transport", s["transport"] == "quic" or cb == b"", True)

    # Shares and the shared secret of §6, computed on both sides.
    if group in ("x25519", "mlkem768x25519"):
        cpriv, spriv = h(s["client_x25519_private"]), h(s["server_x25519_private"])
        cx, sx = sc.x25519_public(cpriv), sc.x25519_public(spriv)
        eq("client_x25519_public", cx)
        eq("server_x25519_public", sx)
        xss = sc.x25519_shared(cpriv, sx)
        eq("x25519 shared secret, server side", sc.x25519_shared(spriv, cx), xss)
    if group == "x25519":
        client_share, server_share, ss = cx, sx, xss
    elif group == "mlkem768x25519":
        ek, dk = mlkem768.keygen(h(s["client_mlkem_seed"]))
        eq("client_mlkem_encapsulation_key", ek)
        key, ct = mlkem768.encaps(ek, h(s["server_mlkem_random"]))
        eq("server_mlkem_ciphertext", ct)
        eq("mlkem_shared_secret", key)
        eq("mlkem_shared_secret, decapsulated", mlkem768.decaps(dk, ct), key)
        bad = bytearray(ct)
        bad[0] ^= 1
        eq("mlkem_implicit_rejection_key (first ciphertext byte XOR 0x01)", mlkem768.decaps(dk, bytes(bad)),
           h(s["mlkem_implicit_rejection_key"]))
        eq("x25519_shared_secret", xss)
        # The ML-KEM part comes first in shares and in ss (§6).
        client_share, server_share, ss = ek + cx, ct + sx, key + xss
        eq("client share size", len(client_share), 1216)
        eq("server share size", len(server_share), 1120)
    elif group == "ffdhe3072":
        xc = int.from_bytes(h(s["client_ffdhe_private"]), "big")
        xs = int.from_bytes(h(s["server_ffdhe_private"]), "big")
        client_share, server_share = ffdhe_public(xc, p), ffdhe_public(xs, p)
        ss = ffdhe_shared(xc, server_share, p)
        eq("ffdhe shared secret, server side", ffdhe_shared(xs, client_share, p), ss)
        c.true(name + ": Y = p-1 refused", raises(ffdhe_shared, xc, (p - 1).to_bytes(384, "big"), p))
        c.true(name + ": Y = 1 refused", raises(ffdhe_shared, xc, (1).to_bytes(384, "big"), p))
    else:
        raise ValueError("unknown group %r" % group)
    eq("client_share", client_share)
    eq("server_share", server_share)
    eq("shared_secret", ss)

    # Host key.
    host = Ed25519PrivateKey.from_private_bytes(h(s["host_key_seed"]))
    host_pub = host.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    eq("host_public_key", host_pub)
    eq("host_key_fingerprint", sc.fingerprint(host_pub))

    # CLIENT_HELLO as the client builds it.
    gid = GROUPS[group]
    ch = sc.build_client_hello(h(s["client_random"]), client_share, s["transport"], gid)
    eq("client_hello", ch)

    # SERVER_HELLO from §5.2 and §7.2; Ed25519 is deterministic, so the
    # signature must come out identical.
    def sh_frame(signature):
        body = (
            b"\x00\x01" + h(s["server_random"]) + struct.pack(">H", gid)
            + sc.opaque16(server_share) + b"\x08\x07"
            + sc.opaque16(host_pub) + sc.opaque16(b"") + sc.opaque16(signature)
        )
        return sc.frame(sc.FRAME_SERVER_HELLO, body)

    eq("transcript_prefix", sc.transcript_prefix(cb))
    shash = sc.signed_hash(ch, sh_frame(bytes(64)), cb)  # the header already counts the signature
    eq("signed_hash", shash)
    sig = host.sign(sc.signature_input(shash))
    eq("signature", sig)
    sh = sh_frame(sig)
    eq("server_hello", sh)
    c.true(name + ": signature verifies",
           not raises(sc.verify_server_signature, host_pub, sig, ch, sh, cb))
    c.true(name + ": signature fails under another channel binding",
           raises(sc.verify_server_signature, host_pub, sig, ch, sh, cb + b"x"))

    # Key schedule (§8), generations 0 and 1 of both directions.
    th = sc.transcript_hash(ch, sh, cb)
    eq("transcript_hash", th)
    ks = sc.KeySchedule(ss, th)
    for k in ("prk", "c2s_secret_0", "s2c_secret_0", "fin_c", "fin_s", "session_id"):
        eq(k, getattr(ks, k))
    for d in ("c2s", "s2c"):
        secret = getattr(ks, d + "_secret_0")
        for n in (0, 1):
            enc, mac, nxt = sc.generation_keys(secret)
            eq("%s_enc_key_%d" % (d, n), enc)
            eq("%s_mac_key_%d" % (d, n), mac)
            eq("%s_secret_%d" % (d, n + 1), nxt)
            secret = nxt
    eq("server_finished", ks.server_finished())
    eq("client_finished", ks.client_finished())

    expected_pt = {
        ("s2c", "FINISHED"): ks.server_finished(),
        ("c2s", "FINISHED"): ks.client_finished(),
        ("c2s", "AUTH"): sc.auth_payload(s["user"], s["password"]),
        ("s2c", "AUTH_RESULT"): b"\x00",
        ("c2s", "KEY_UPDATE"): b"",
        ("s2c", "KEY_UPDATE"): b"",
        ("c2s", "CLOSE"): b"",
        ("s2c", "CLOSE"): b"",
    }

    # Records: each direction's sender seals with the given IV; a separate
    # receiver opens in order, as the peer would. KEY_UPDATE moves both to
    # the next generation with seq 0 (§11).
    secrets = {"c2s": ks.c2s_secret_0, "s2c": ks.s2c_secret_0}
    sealers = {d: sc.Direction(x) for d, x in secrets.items()}
    openers = {d: sc.Direction(x) for d, x in secrets.items()}
    gens = {"c2s": 0, "s2c": 0}
    types_seen = set()
    for r in s["records"]:
        d, t = r["direction"], r["type"]
        rname = "%s: record %s gen %d seq %d %s" % (name, d, r["generation"], r["seq"], t)
        types_seen.add(t)
        pt = h(r["plaintext"])
        if (d, t) in expected_pt:
            c.eq(rname + " plaintext", pt, expected_pt[(d, t)])
        c.eq(rname + " generation", gens[d], r["generation"])
        c.eq(rname + " seq", sealers[d].seq, r["seq"])
        rec = sealers[d].seal(RECORD_TYPES[t], pt, iv=h(r["iv"]))
        c.eq(rname, rec, h(r["record"]))
        rec = h(r["record"])
        rtype, _ = sc.check_record_header(rec[:5])
        c.eq(rname + " header type", rtype, RECORD_TYPES[t])

        # Tampering, on copies so that the real receiver is untouched.
        other = "s2c" if d == "c2s" else "c2s"
        wrong_dir = copy.deepcopy(openers[other])
        wrong_dir.seq = r["seq"]
        c.true(rname + " fails in the other direction", raises(wrong_dir.open, rec[:5], rec[5:]))
        wrong_seq = copy.deepcopy(openers[d])
        wrong_seq.seq += 1
        c.true(rname + " fails at another seq", raises(wrong_seq.open, rec[:5], rec[5:]))
        if r["generation"] > 0:
            old_gen = sc.Direction(secrets[d])
            old_gen.seq = r["seq"]
            c.true(rname + " fails under generation 0", raises(old_gen.open, rec[:5], rec[5:]))
        for pos in (0, 5, 5 + 16, len(rec) - 1):  # type, IV, CT, TAG
            flipped = bytearray(rec)
            flipped[pos] ^= 0x80
            probe = copy.deepcopy(openers[d])
            c.true("%s fails with byte %d flipped" % (rname, pos),
                   raises(probe.open, bytes(flipped[:5]), bytes(flipped[5:])))

        try:
            opened = openers[d].open(rec[:5], rec[5:])
            if d == "s2c":
                sc.check_form(rtype, opened)  # the client's receive rules
        except sc.ProtocolError as e:
            opened = "error: %s" % e
        c.eq(rname + " opens", opened, pt)
        if t == "KEY_UPDATE":
            sealers[d].rekey()
            openers[d].rekey()
            gens[d] += 1
    c.eq(name + ": record types", sorted(types_seen),
         sorted(["FINISHED", "AUTH", "AUTH_RESULT", "APP", "KEY_UPDATE", "CLOSE"]))


def render_announcement(a):
    """The announcement vector as §15 writes it out (hex, 64 digits a line)."""
    out = ["host key announcement of session %s (%s, host_key_announcement)" % (a["session"], VECTORS_NAME), ""]
    for k in ("next_host_key_seed", "next_host_public_key", "next_host_key_fingerprint",
              "proof_current", "proof_next"):
        v = a[k]
        if len(v) > 64:
            out.append(k + ":")
            out.extend(hex_lines(v, 4))
        else:
            out.append("%-26s %s" % (k, v))
    out.append("payload (JSON):")
    out.append("    " + bytes.fromhex(a["payload"]).decode())
    return "\n".join(out)


def check_announcement(c, vectors):
    """Rebuild the host key announcement of §7.5 from its inputs."""
    a = vectors["host_key_announcement"]
    s = next(x for x in vectors["sessions"] if x["name"] == a["session"])
    h = bytes.fromhex

    def eq(field, got):
        c.eq("host_key_announcement: " + field, got, a[field])

    c.eq("announcement inputs", [(i["field"], i["size"]) for i in a["inputs"]], [("next_host_key_seed", 32)])
    seed = input_value(a["inputs"][0]["label"], 32)
    eq("next_host_key_seed", seed)
    eq("session_id", s["session_id"])
    eq("host_public_key", s["host_public_key"])
    current = Ed25519PrivateKey.from_private_bytes(h(s["host_key_seed"]))
    nxt = Ed25519PrivateKey.from_private_bytes(seed)
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    cur_pub, nxt_pub = current.public_key().public_bytes(*raw), nxt.public_key().public_bytes(*raw)
    eq("next_host_public_key", nxt_pub)
    eq("next_host_key_fingerprint", sc.fingerprint(nxt_pub))
    sid = h(s["session_id"])
    cur_msg = sc.announce_message(sc.ANNOUNCE_LABEL_CURRENT, sid, cur_pub, nxt_pub)
    nxt_msg = sc.announce_message(sc.ANNOUNCE_LABEL_NEXT, sid, cur_pub, nxt_pub)
    eq("current_signed_message", cur_msg)
    eq("next_signed_message", nxt_msg)
    proof_cur, proof_nxt = current.sign(cur_msg), nxt.sign(nxt_msg)  # Ed25519 is deterministic
    eq("proof_current", proof_cur)
    eq("proof_next", proof_nxt)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    obj = {"t": "hostkeys", "next": b64(nxt_pub), "proof_current": b64(proof_cur), "proof_next": b64(proof_nxt)}
    payload = json.dumps(obj, separators=(",", ":")).encode()
    eq("payload", payload)

    r = a["record"]
    c.eq("announcement record position", (r["direction"], r["generation"], r["seq"], r["type"]), ("s2c", 0, 2, "APP"))
    iv = input_value(r["iv_label"], 32)[:16]
    c.eq("announcement record iv", iv, r["iv"])
    sealer = sc.Direction(h(s["s2c_secret_0"]))
    sealer.seq = r["seq"]
    c.eq("announcement record", sealer.seal(sc.REC_APP, payload, iv=iv), r["record"])
    c.eq("announcement record plaintext", payload, r["plaintext"])

    # The client's side: the record opens at its place in the session, and
    # the proofs verify for this session only.
    opener = sc.Direction(h(s["s2c_secret_0"]))
    opener.seq = r["seq"]
    rec = h(r["record"])
    c.eq("announcement record opens", opener.open(rec[:5], rec[5:]), payload)
    got = json.loads(payload)
    c.eq("announcement verifies", sc.verify_host_key_announcement(got, cur_pub, sid), nxt_pub)
    c.true("announcement for another session refused",
           raises(sc.verify_host_key_announcement, got, cur_pub, bytes(32)))
    c.true("announcement under another current key refused",
           raises(sc.verify_host_key_announcement, got, nxt_pub, sid))
    swapped = dict(got, proof_current=got["proof_next"], proof_next=got["proof_current"])
    c.true("announcement with swapped proofs refused", raises(sc.verify_host_key_announcement, swapped, cur_pub, sid))
    other = Ed25519PrivateKey.from_private_bytes(input_value("another key", 32))
    forged = dict(got, proof_next=b64(other.sign(nxt_msg)))
    c.true("announcement proved by the wrong key refused", raises(sc.verify_host_key_announcement, forged, cur_pub, sid))


def render_key_auth(a):
    """The key AUTH vector as §15 writes it out (hex, 64 digits a line)."""
    out = ["key login AUTH of session %s (%s, user_key_auth)" % (a["session"], VECTORS_NAME), ""]
    for k in ("user", "user_key_seed", "user_public_key", "signed_message", "signature", "payload"):
        v = a[k]
        if len(v) > 64:
            out.append(k + ":")
            out.extend(hex_lines(v, 4))
        else:
            out.append("%-16s %s" % (k, v))
    r = a["record"]
    out.append("record (c2s gen %d seq %d %s, iv %s):" % (r["generation"], r["seq"], r["type"], r["iv"]))
    out.extend(hex_lines(r["record"], 4))
    return "\n".join(out)


def check_key_auth(c, vectors):
    """Rebuild the public-key AUTH of §10.2 from its inputs, and check that
    its signature proves nothing in another session."""
    a = vectors["user_key_auth"]
    s = next(x for x in vectors["sessions"] if x["name"] == a["session"])
    h = bytes.fromhex

    def eq(field, got):
        c.eq("user_key_auth: " + field, got, a[field])

    c.eq("key auth inputs", [(i["field"], i["size"]) for i in a["inputs"]], [("user_key_seed", 32)])
    seed = input_value(a["inputs"][0]["label"], 32)
    eq("user_key_seed", seed)
    eq("transcript_hash", s["transcript_hash"])
    key = Ed25519PrivateKey.from_private_bytes(seed)
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub = key.public_key().public_bytes(*raw)
    eq("user_public_key", pub)
    th = h(s["transcript_hash"])
    msg = b"securechat v1 user auth\x00" + th + bytes([len(a["user"])]) + a["user"].encode() + pub
    eq("signed_message", msg)
    c.eq("user_key_auth: signed message of scclient", sc.user_auth_message(th, a["user"], pub), msg)
    eq("signature", key.sign(msg))  # Ed25519 is deterministic
    payload = sc.key_auth_payload(th, a["user"], key)
    eq("payload", payload)
    data = struct.pack(">H", 0x0807) + struct.pack(">H", 32) + pub + struct.pack(">H", 64) + key.sign(msg)
    c.eq("user_key_auth: payload by hand", b"\x02" + bytes([len(a["user"])]) + a["user"].encode()
         + struct.pack(">H", len(data)) + data, payload)

    r = a["record"]
    c.eq("key auth record position", (r["direction"], r["generation"], r["seq"], r["type"]), ("c2s", 0, 1, "AUTH"))
    iv = input_value(r["iv_label"], 32)[:16]
    c.eq("key auth record iv", iv, r["iv"])
    sealer = sc.Direction(h(s["c2s_secret_0"]))
    sealer.seq = r["seq"]
    c.eq("key auth record", sealer.seal(sc.REC_AUTH, payload, iv=iv), r["record"])
    c.eq("key auth record plaintext", payload, r["plaintext"])

    # The server's side: the signature verifies over this session's TH and
    # no other, for this user and no other.
    def verifies(th_, user):
        try:
            Ed25519PublicKey.from_public_bytes(pub).verify(h(a["signature"]), sc.user_auth_message(th_, user, pub))
            return True
        except InvalidSignature:
            return False

    c.true("key auth signature verifies in its session", verifies(th, a["user"]))
    for other in vectors["sessions"]:
        if other["name"] != a["session"]:
            c.true("key auth of %s refused in session %s" % (a["session"], other["name"]),
                   not verifies(h(other["transcript_hash"]), a["user"]))
    c.true("key auth refused for another user", not verifies(th, "bob"))


def render_signed(d):
    """The signed message vectors as §15 writes them out."""
    out = ["signed messages (%s, signed_messages)" % VECTORS_NAME, ""]
    for k in ("server", "user", "user_public_key", "user_key_fingerprint"):
        out.append("%-21s %s" % (k, d[k]))
    out.append("known_users_line:")
    out.append("    " + d["known_users_line"])
    for m in d["messages"]:
        out.append("")
        out.append("%s: kind %s, target %s, from %s, ctr %d, cts %d" % (m["name"], m["kind"], m["target"], m["from"],
                                                                      m["ctr"], m["cts"]))
        out.append("  text  " + m["text"])
        for k in ("signed_message", "signature"):
            out.append("  %s:" % k)
            out.extend(hex_lines(m[k], 4))
        for k in ("request", "event"):
            out.append("  %s:" % k)
            out.append("    " + json.dumps(m[k], ensure_ascii=False, separators=(",", ":")))
    out.append("")
    out.append("checks (receiver %s, %s, clock %d ms), in order:" % (d["receiver"], d["receiver_policy"],
                                                                     d["receiver_now_ms"]))
    for c in d["checks"]:
        mark = c["status"] + ("/" + c["reason"] if c["reason"] else "")
        out.append("  %-25s %s%s" % (mark, c["name"], " (replay starts)" if c.get("start_replay") else ""))
    return "\n".join(out)


def check_signed(c, vectors):
    """Rebuild the signed messages of §13.16 from their inputs, and judge
    the check events by the rules of §13.16.5 with scclient's verifier."""
    d = vectors["signed_messages"]
    h = bytes.fromhex
    c.eq("signed inputs", [(i["field"], i["label"], i["size"]) for i in d["inputs"]],
         [("user_key_seed", "user key seed", 32), ("other_key_seed", "another user key seed", 32)])
    key = Ed25519PrivateKey.from_private_bytes(input_value("user key seed", 32))
    other = Ed25519PrivateKey.from_private_bytes(input_value("another user key seed", 32))
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub = key.public_key().public_bytes(*raw)
    c.eq("signed: user key is user_key_auth's", d["user_public_key"], vectors["user_key_auth"]["user_public_key"])
    c.eq("signed: user_public_key", pub, d["user_public_key"])
    c.eq("signed: other_public_key", other.public_key().public_bytes(*raw), d["other_public_key"])
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + pub
    c.eq("signed: fingerprint", "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
         d["user_key_fingerprint"])
    c.eq("signed: known_users_line", "alice@%s ssh-ed25519 %s" % (d["server"], base64.b64encode(blob).decode()),
         d["known_users_line"])
    c.eq("signed: scclient reads the known_users line", sc.parse_known_users(d["known_users_line"]),
         [(1, False, "alice@" + d["server"], pub)])
    b64 = lambda b: base64.b64encode(b).decode()
    for m in d["messages"]:
        t = m["text"].encode()
        msg = (b"securechat v1 signed message\x00" + bytes([len(m["kind"])]) + m["kind"].encode()
               + bytes([len(m["target"])]) + m["target"].encode() + bytes([len(m["from"])]) + m["from"].encode()
               + pub + m["ctr"].to_bytes(8, "big") + m["cts"].to_bytes(8, "big") + len(t).to_bytes(4, "big") + t)
        c.eq("signed %s: signed_message" % m["name"], msg, m["signed_message"])
        c.eq("signed %s: scclient's signed_message" % m["name"],
             sc.signed_message(pub, m["kind"], m["target"], m["from"], m["ctr"], m["cts"], m["text"]), msg)
        sig = key.sign(msg)
        c.eq("signed %s: signature" % m["name"], sig, m["signature"])
        c.eq("signed %s: scclient's signature" % m["name"],
             sc.sign_message(key, m["kind"], m["target"], m["from"], m["ctr"], m["cts"], m["text"]), sig)
        c.eq("signed %s: ctr follows the clock" % m["name"], m["ctr"] // 1000, m["cts"])
        place = {"to": m["target"]} if m["kind"] == "dm" else {"room": m["target"]}
        req = {"t": "msg", "id": m["request"]["id"], **place, "text": m["text"], "sig": b64(sig),
               "ctr": m["ctr"], "cts": m["cts"]}
        if m["kind"] == "me":
            req["kind"] = "me"
        c.eq("signed %s: request" % m["name"], m["request"], req)
        ev = {"t": "msg", "mid": m["event"]["mid"], "ts": m["event"]["ts"], "kind": m["kind"], **place,
              "from": m["from"], "text": m["text"], "key": b64(pub), "sig": b64(sig), "ctr": m["ctr"], "cts": m["cts"]}
        c.eq("signed %s: event" % m["name"], m["event"], ev)
    v = sc.MessageVerifier(d["receiver"], d["server"], path=None, policy=d["receiver_policy"],
                           now_ms=lambda: d["receiver_now_ms"])
    for chk in d["checks"]:
        if chk.get("start_replay"):
            v.start_replay(chk["event"].get("room", ""))
        c.eq("signed check: " + chk["name"], v.check(chk["event"]), (chk["status"], chk["reason"]))
    c.eq("signed checks pin alice once", [w for _, _, w, _ in v.memory], ["alice@" + d["server"]])
    # The rules beyond the file's sequence: a strict receiver pins nothing,
    # a revoked key fails even when pinned, a dm to someone else is misdirected.
    first = d["checks"][0]["event"]
    strict = sc.MessageVerifier("bob", d["server"], policy="strict", now_ms=lambda: d["receiver_now_ms"])
    c.eq("signed: strict receiver", strict.check(first), ("failed", "key_unknown"))
    revoked = sc.MessageVerifier("bob", d["server"], now_ms=lambda: d["receiver_now_ms"])
    revoked.memory = [(1, False, "alice@" + d["server"], pub), (2, True, "*", pub)]
    c.eq("signed: revoked key", revoked.check(first), ("failed", "key_revoked"))
    carol = sc.MessageVerifier("carol", d["server"], now_ms=lambda: d["receiver_now_ms"])
    dm = next(m["event"] for m in d["messages"] if m["kind"] == "dm")
    c.eq("signed: dm to bob shown to carol", carol.check(dm), ("failed", "misdirected"))
    late = sc.MessageVerifier("bob", d["server"], now_ms=lambda: d["receiver_now_ms"] + 3600 * 1000)
    c.eq("signed: an hour late", late.check(first), ("failed", "stale"))


def seal_unchecked(d, rtype, plaintext, iv):
    """A correctly tagged record of any size, as a misbehaving peer could
    make; Direction.seal refuses plaintext over 16384 bytes."""
    enc = Cipher(algorithms.AES(d.enc_key), modes.CBC(iv)).encryptor()
    ct = enc.update(sc.pkcs7_pad(plaintext)) + enc.finalize()
    header = struct.pack(">BI", rtype, len(iv) + len(ct))
    return header + iv + ct + d._tag(header, iv + ct)


def check_record_limits(c):
    # Header bounds of §9.2 step 1.
    for length, ok in ((31, False), (32, True), (40, False), (16416, True), (16432, False)):
        hdr = bytes([sc.REC_APP]) + length.to_bytes(4, "big")
        c.eq("length %d accepted" % length, not raises(sc.check_record_header, hdr), ok)
    # §9.2 step 5: the length field has room for 16399 bytes under a short
    # padding, but a plaintext over 16384 bytes is a failure.
    secret = hashlib.sha256(b"record size check").digest()
    for n, ok in ((16384, True), (16385, False), (16399, False)):
        rec = seal_unchecked(sc.Direction(secret), sc.REC_APP, b"x" * n, bytes(16))
        c.eq("length field for a %d-byte plaintext" % n, struct.unpack(">I", rec[1:5])[0], 16416)
        opener = sc.Direction(secret)
        c.eq("%d-byte plaintext accepted" % n, not raises(opener.open, rec[:5], rec[5:]), ok)


def check_message_outcome(c):
    # §13.5 and §13.13: what a client makes of the answer to a msg.
    c.eq("ack", sc.message_outcome({"t": "ack", "id": "m", "mid": 7}), ("acked", 7))
    c.eq("not_stored with mid: delivered",
         sc.message_outcome({"t": "error", "id": "m", "code": "not_stored", "mid": 7}), ("not_stored", 7))
    c.eq("not_stored without mid: send again",
         sc.message_outcome({"t": "error", "id": "m", "code": "not_stored"}), ("resend", None))
    c.true("another error is a refusal",
           raises(sc.message_outcome, {"t": "error", "id": "m", "code": "flood"}))


def main(argv):
    vectors = json.load(open(VECTORS, encoding="utf-8"))
    spec = open(SPEC, encoding="utf-8").read()
    p = int(vectors["ffdhe3072_p"], 16)
    spec_session = next(s for s in vectors["sessions"] if s["name"] == SPEC_SESSION)

    if "--render" in argv:
        print(render_prime(p))
        print()
        print(render_table(vectors))
        print()
        print(render_block(spec_session))
        print()
        print(render_announcement(vectors["host_key_announcement"]))
        print()
        print(render_key_auth(vectors["user_key_auth"]))
        print()
        print(render_signed(vectors["signed_messages"]))
        return 0

    c = Checker()

    # The group of §6: the RFC 7919 formula, a safe prime, and the same
    # digits in the specification and the JSON.
    c.eq("ffdhe3072_p is the RFC 7919 prime", p, rfc7919_prime())
    c.eq("ffdhe3072_g", vectors["ffdhe3072_g"], 2)
    c.true("ffdhe3072 p and (p-1)/2 are prime", is_probable_prime(p) and is_probable_prime((p - 1) // 2))
    prime_blocks = [b for b in spec_code_blocks(spec_section(spec, "## 6. Key exchange groups"))
                    if b.startswith("    FFFFFFFF")]
    c.eq("PROTOCOL.md §6 shows the prime", len(prime_blocks), 1)
    if prime_blocks:
        c.eq("PROTOCOL.md §6 prime digits", prime_blocks[0], render_prime(p))

    # §15 names the file and shows the session table and one whole session.
    s15 = spec_section(spec, "## 15. Test vectors")
    c.true("PROTOCOL.md §15 names " + VECTORS_NAME, "`%s`" % VECTORS_NAME in s15)
    c.true("PROTOCOL.md §15 session table", render_table(vectors) in s15)
    blocks = spec_code_blocks(s15)
    c.true("PROTOCOL.md §15 writes out session " + SPEC_SESSION, render_block(spec_session) in blocks)
    c.true("PROTOCOL.md §15 writes out the host key announcement",
           render_announcement(vectors["host_key_announcement"]) in blocks)
    c.true("PROTOCOL.md §15 writes out the key login AUTH",
           render_key_auth(vectors["user_key_auth"]) in blocks)
    c.true("PROTOCOL.md §15 writes out the signed messages",
           render_signed(vectors["signed_messages"]) in blocks)

    for s in vectors["sessions"]:
        check_session(c, s, p)
    c.eq("groups covered", sorted({s["group"] for s in vectors["sessions"]}), sorted(GROUPS))
    c.true("a session over quic with a channel binding",
           any(s["transport"] == "quic" and s["channel_binding"] for s in vectors["sessions"]))
    check_record_limits(c)
    check_announcement(c, vectors)
    check_key_auth(c, vectors)
    check_signed(c, vectors)
    check_message_outcome(c)

    print("%d checks passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
