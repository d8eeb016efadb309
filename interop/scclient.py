#!/usr/bin/python3
"""An independent securechat v1 client, written from PROTOCOL.md alone.

It exists to show that the specification is enough to interoperate with the
Go server: it shares no code with it. Only what a script client needs is
here: TCP, the x25519 group, password login, and the chat-layer flow of
PROTOCOL.md §13.3 (hello, welcome, one room message, its ack, CLOSE). With
--known-hosts it also honours @revoked lines and records a next host key that
the server announces and proves (§7.5). While it lingers it pings the server
when idle (§3, §13.11), and a not_stored without mid (§13.5) makes it send its
message once more.

The protocol pieces (framing, key schedule, record layer) are plain functions
and classes so that interop/test_vectors.py can check them against §15.

Usage:
  python3 interop/scclient.py --host 127.0.0.1 --port N --user U \
      --password-file F [--fingerprint SHA256:...] [--known-hosts FILE]

Exit codes follow the reference client's: 0 clean end, 1 error,
3 authentication failed, 4 the server could not be authenticated (host key,
signature or FINISHED; §7.4), 5 connection lost.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import select
import socket
import struct
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

# --- constants (§4, §5, §6, §9.1) ----------------------------------------

FRAME_CLIENT_HELLO = 0x01
FRAME_SERVER_HELLO = 0x02
FRAME_ABORT = 0x7F
MAX_FRAME_BODY = 8192

MAGIC = b"SECURECHAT"
VERSION_1 = 0x0001
GROUP_X25519 = 0x001D
SIG_ED25519 = 0x0807

REC_FINISHED = 0x10
REC_AUTH = 0x11
REC_AUTH_RESULT = 0x12
REC_KEY_UPDATE = 0x13
REC_CLOSE = 0x14
REC_APP = 0x20
REC_NAMES = {
    REC_FINISHED: "FINISHED",
    REC_AUTH: "AUTH",
    REC_AUTH_RESULT: "AUTH_RESULT",
    REC_KEY_UPDATE: "KEY_UPDATE",
    REC_CLOSE: "CLOSE",
    REC_APP: "APP",
}

MAX_PLAINTEXT = 16384
MIN_REC_LEN = 32  # IV + one CBC block: PKCS#7 always adds at least one byte
MAX_REC_LEN = 16 + MAX_PLAINTEXT + 16  # IV + plaintext + a full padding block
TAG_LEN = 32

# §11 hard limits; a sender rekeys well before them.
MAX_RECORDS_PER_GEN = 2**31
MAX_BLOCKS_PER_GEN = 2**32
REKEY_RECORDS = 2**30

ABORT_CODES = {
    0x01: "unsupported version",
    0x02: "no common key exchange group or signature algorithm",
    0x03: "handshake failure",
}


class ProtocolError(Exception):
    """A failure that ends the connection (§9.3: close, send nothing)."""


class Truncated(ProtocolError):
    """End of stream without a CLOSE record (§12): never a clean end."""


class ServerNotAuthenticated(ProtocolError):
    """§7.4: the server did not prove who it is (never a network fault)."""


class AuthFailed(Exception):
    pass


class HostKeyError(Exception):
    pass


# --- cleartext frames (§4, §5) -------------------------------------------


def frame(ftype, body):
    if len(body) > MAX_FRAME_BODY:
        raise ValueError("frame body too long")
    return struct.pack(">B", ftype) + len(body).to_bytes(3, "big") + body


def opaque8(b):
    return struct.pack(">B", len(b)) + b


def opaque16(b):
    return struct.pack(">H", len(b)) + b


def u16_list(values):
    return struct.pack(">B", len(values)) + b"".join(struct.pack(">H", v) for v in values)


def build_client_hello(client_random, share, transport="tcp", group=GROUP_X25519):
    """The complete CLIENT_HELLO frame (header included, as hashed).

    This client offers x25519 only; the test vectors also build hellos for
    the other groups of §6 with their shares.
    """
    # One group only, so one share: there is no retry message (§5.1).
    body = (
        MAGIC
        + u16_list([VERSION_1])
        + client_random
        + opaque8(transport.encode("ascii"))
        + u16_list([group])
        + struct.pack(">B", 1)
        + struct.pack(">H", group)
        + opaque16(share)
        + u16_list([SIG_ED25519])
        + opaque16(b"")
    )
    return frame(FRAME_CLIENT_HELLO, body)


class Reader:
    """Bounds-checked cursor: any short read is a malformed message."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProtocolError("malformed SERVER_HELLO: short field")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def opaque16(self):
        return self.take(self.u16())

    def done(self):
        return self.pos == len(self.data)


def parse_server_hello(body):
    """Parse a SERVER_HELLO body with the client's rules of §5.2.

    Only what this client offered is acceptable: version 1, x25519, Ed25519.
    """
    r = Reader(body)
    sh = {
        "version": r.u16(),
        "server_random": r.take(32),
        "group": r.u16(),
        "key_share": r.opaque16(),
        "sig_alg": r.u16(),
        "host_key": r.opaque16(),
        "extensions": r.opaque16(),
        "signature": r.opaque16(),
    }
    if not r.done():
        raise ProtocolError("SERVER_HELLO: bytes after signature")
    if sh["version"] != VERSION_1:
        raise ProtocolError("SERVER_HELLO: version %#06x not offered" % sh["version"])
    if sh["group"] != GROUP_X25519:
        raise ProtocolError("SERVER_HELLO: group %#06x not offered" % sh["group"])
    if sh["sig_alg"] != SIG_ED25519:
        raise ProtocolError("SERVER_HELLO: sig_alg %#06x not offered" % sh["sig_alg"])
    if len(sh["key_share"]) != 32:
        raise ProtocolError("SERVER_HELLO: x25519 share is not 32 bytes")
    if len(sh["host_key"]) != 32:
        raise ProtocolError("SERVER_HELLO: host key is not 32 bytes")
    # §5.2 says the field "MUST be empty in version 1"; a client that let it
    # through would be accepting something it cannot have negotiated.
    if sh["extensions"]:
        raise ProtocolError("SERVER_HELLO: non-empty extensions")
    if len(sh["signature"]) != 64:
        raise ProtocolError("SERVER_HELLO: signature is not 64 bytes")
    return sh


# --- transcript and signature (§5.3, §7) ---------------------------------


def transcript_prefix(cb=b""):
    return b"securechat v1 transcript\x00" + struct.pack(">B", len(cb)) + cb


def transcript_hash(ch, sh, cb=b""):
    return hashlib.sha256(transcript_prefix(cb) + ch + sh).digest()


def signed_hash(ch, sh, cb=b""):
    # The signature covers SH without its own opaque16 (2 + 64 bytes), while
    # the frame header still carries the full length (§7.2).
    return hashlib.sha256(transcript_prefix(cb) + ch + sh[:-66]).digest()


def signature_input(sh_hash):
    return b"securechat v1 server signature\x00" + sh_hash


def verify_server_signature(host_key, signature, ch, sh, cb=b""):
    try:
        Ed25519PublicKey.from_public_bytes(host_key).verify(
            signature, signature_input(signed_hash(ch, sh, cb))
        )
    except InvalidSignature:
        raise ProtocolError("SERVER_HELLO: bad host key signature") from None


def fingerprint(host_key):
    digest = hashlib.sha256(host_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# --- x25519 (§6) ---------------------------------------------------------


def x25519_shared(private_bytes, peer_public):
    if len(peer_public) != 32:
        raise ProtocolError("x25519 share is not 32 bytes")
    priv = X25519PrivateKey.from_private_bytes(private_bytes)
    try:
        ss = priv.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        # OpenSSL refuses an all-zero result itself; same outcome as below.
        raise ProtocolError("x25519: low-order peer point") from None
    if ss == bytes(32):
        raise ProtocolError("x25519: low-order peer point")
    return ss


def x25519_public(private_bytes):
    return (
        X25519PrivateKey.from_private_bytes(private_bytes)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


# --- key schedule (§8) ---------------------------------------------------


def hkdf_extract(salt, ikm):
    # RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM).
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length=32):
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk)


def label(name, context=b""):
    full = b"securechat v1 " + name.encode("ascii")
    return struct.pack(">B", len(full)) + full + struct.pack(">B", len(context)) + context


class KeySchedule:
    """Everything §8 derives from the shared secret and TH."""

    def __init__(self, ss, th):
        self.prk = hkdf_extract(b"securechat v1", ss)
        self.c2s_secret_0 = hkdf_expand(self.prk, label("c2s traffic", th))
        self.s2c_secret_0 = hkdf_expand(self.prk, label("s2c traffic", th))
        self.fin_c = hkdf_expand(self.prk, label("c finished", th))
        self.fin_s = hkdf_expand(self.prk, label("s finished", th))
        self.session_id = hkdf_expand(self.prk, label("session id", th))
        self.th = th

    def server_finished(self):
        return hmac.new(self.fin_s, self.th, hashlib.sha256).digest()

    def client_finished(self):
        return hmac.new(self.fin_c, self.th, hashlib.sha256).digest()


def generation_keys(secret):
    """(enc_key, mac_key, next_secret) of one key generation."""
    return (
        hkdf_expand(secret, label("enc")),
        hkdf_expand(secret, label("mac")),
        hkdf_expand(secret, label("next")),
    )


# --- record layer (§9) ---------------------------------------------------


def pkcs7_pad(data):
    n = 16 - len(data) % 16  # always 1..16: a full block when aligned
    return data + bytes([n]) * n


def pkcs7_unpad(data):
    n = data[-1] if data else 0
    if not 1 <= n <= 16 or n > len(data) or data[-n:] != bytes([n]) * n:
        raise ProtocolError("record: bad padding")
    return data[:-n]


class Direction:
    """One direction's keys and implicit sequence number (§8, §9, §11)."""

    def __init__(self, secret_0):
        self._install(secret_0)

    def _install(self, secret):
        self.enc_key, self.mac_key, self._next = generation_keys(secret)
        self.seq = 0
        self.blocks = 0

    def rekey(self):
        # The old secret is dropped with the old keys (§8).
        self._install(self._next)

    def _tag(self, header, iv_ct):
        msg = b"SCv1 rec" + struct.pack(">Q", self.seq) + header + iv_ct
        return hmac.new(self.mac_key, msg, hashlib.sha256).digest()

    def seal(self, rtype, plaintext, iv=None):
        """One whole record; iv is fixed only by the test vectors."""
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError("record plaintext over 16384 bytes")
        if iv is None:
            iv = os.urandom(16)
        enc = Cipher(algorithms.AES(self.enc_key), modes.CBC(iv)).encryptor()
        ct = enc.update(pkcs7_pad(plaintext)) + enc.finalize()
        header = struct.pack(">BI", rtype, len(iv) + len(ct))
        record = header + iv + ct + self._tag(header, iv + ct)
        self._count(len(ct))
        return record

    def open(self, header, body):
        """Check the tag, then decrypt (§9.2 steps 3-5). Returns plaintext.

        The caller has already checked the header bounds (step 1).
        """
        iv_ct, tag = body[:-TAG_LEN], body[-TAG_LEN:]
        if not hmac.compare_digest(self._tag(header, iv_ct), tag):
            raise ProtocolError("record: bad MAC")
        iv, ct = iv_ct[:16], iv_ct[16:]
        dec = Cipher(algorithms.AES(self.enc_key), modes.CBC(iv)).decryptor()
        plaintext = pkcs7_unpad(dec.update(ct) + dec.finalize())
        # Short padding under the largest length leaves room for 16399
        # bytes; §9.2 step 5 makes anything over 16384 a failure.
        if len(plaintext) > MAX_PLAINTEXT:
            raise ProtocolError("record: plaintext over 16384 bytes")
        self._count(len(ct))
        return plaintext

    def _count(self, ct_len):
        self.seq += 1
        self.blocks += ct_len // 16
        if self.seq > MAX_RECORDS_PER_GEN or self.blocks > MAX_BLOCKS_PER_GEN:
            raise ProtocolError("record: key generation used past its limit")


def check_record_header(header):
    """§9.2 step 1: bounds on the 5-byte header alone, before any allocation."""
    rtype, length = struct.unpack(">BI", header)
    if not (MIN_REC_LEN <= length <= MAX_REC_LEN and (length - 16) % 16 == 0):
        raise ProtocolError("record: length %d out of bounds" % length)
    return rtype, length


def check_form(rtype, payload):
    """§9.2 step 6, the part that does not depend on state."""
    if rtype == REC_FINISHED and len(payload) != 32:
        raise ProtocolError("FINISHED payload is not 32 bytes")
    if rtype == REC_AUTH_RESULT and payload not in (b"\x00", b"\x01"):
        raise ProtocolError("AUTH_RESULT payload malformed")
    if rtype in (REC_KEY_UPDATE, REC_CLOSE) and payload:
        raise ProtocolError("%s payload not empty" % REC_NAMES[rtype])
    if rtype == REC_AUTH:
        raise ProtocolError("AUTH from the server")
    if rtype not in REC_NAMES:
        raise ProtocolError("unknown record type %#04x" % rtype)


def auth_payload(user, password):
    u, p = user.encode("utf-8"), password.encode("utf-8")
    return b"\x01" + opaque8(u) + opaque16(p)


# Public-key login (§10.2, method 0x02).
USER_AUTH_LABEL = b"securechat v1 user auth\x00"
SIG_ALG_ED25519 = 0x0807


def user_auth_message(th, user, public_key):
    """What the user's key signs: label || TH || u8(len(user)) || user || key."""
    u = user.encode("ascii")
    return USER_AUTH_LABEL + th + opaque8(u) + public_key


def key_auth_payload(th, user, private_key):
    """AUTH method 0x02 for an Ed25519 private key (cryptography's object):
    method | username opaque8 | data opaque16, where
    data = sig_alg u16 | public_key opaque16 | signature opaque16."""
    pub = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = private_key.sign(user_auth_message(th, user, pub))
    data = struct.pack(">H", SIG_ALG_ED25519) + opaque16(pub) + opaque16(sig)
    return b"\x02" + opaque8(user.encode("ascii")) + opaque16(data)


def load_identity(path, passphrase=None):
    """An OpenSSH Ed25519 private key file (as ssh-keygen or securechat
    keygen --user write it). A passphrase needs the bcrypt module."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    with open(path, "rb") as f:
        key = serialization.load_ssh_private_key(f.read(), password=passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("%s is not an Ed25519 key" % path)
    return key


# --- known hosts (§7.3) --------------------------------------------------


def read_known_hosts(path):
    """The lines of a known_hosts file as (line, revoked, host, key).

    A line is "HOST:PORT securechat-ed25519 BASE64KEY", optionally after the
    marker "@revoked", whose host may also be "*" (every host). Anything else
    but blank lines and comments makes the whole file invalid (§7.3).
    """
    out = []
    lines = []
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        revoked = bool(fields) and fields[0] == "@revoked"
        if revoked:
            fields = fields[1:]
        try:
            key = base64.b64decode(fields[2], validate=True) if len(fields) == 3 else b""
        except ValueError:
            key = b""
        if len(fields) != 3 or fields[1] != "securechat-ed25519" or len(key) != 32 \
                or (fields[0] == "*" and not revoked) or fields[0].startswith("@"):
            raise HostKeyError("%s:%d: invalid known_hosts line" % (path, no))
        out.append((no, revoked, fields[0], key))
    return out


def revoked_line(entries, hostport, key):
    for no, revoked, host, k in entries:
        if revoked and host in (hostport, "*") and k == key:
            return no
    return None


def check_known_hosts(path, hostport, host_key, pinned_fp):
    """Trust on first use. Raises HostKeyError when the key must be refused.

    Returns "known", or "pinned"/"new" for a key the caller should record
    with remember_host once the handshake has proved the server holds it.
    """
    entries = read_known_hosts(path)
    no = revoked_line(entries, hostport, host_key)
    if no is not None:
        # Refused whatever else the file says, and whatever the pin (§7.3).
        raise HostKeyError("host key %s of %s is REVOKED (%s:%d)" % (fingerprint(host_key), hostport, path, no))
    matched, first_other = False, None
    for no, revoked, host, key in entries:
        if host == hostport and not revoked:
            if key == host_key:
                matched = True
            elif first_other is None:
                first_other = no
    if matched:
        return "known"
    if first_other is not None:
        # A pinned fingerprint never overrides a changed key (§7.3).
        raise HostKeyError(
            "HOST KEY CHANGED for %s (%s:%d); server now offers %s"
            % (hostport, path, first_other, fingerprint(host_key))
        )
    if pinned_fp is not None and pinned_fp != fingerprint(host_key):
        raise HostKeyError(
            "host key %s does not match --fingerprint %s" % (fingerprint(host_key), pinned_fp)
        )
    return "pinned" if pinned_fp else "new"


def remember_host(path, hostport, host_key):
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write("%s securechat-ed25519 %s\n" % (hostport, base64.b64encode(host_key).decode()))


# --- host key rotation (§7.5) ----------------------------------------------

ANNOUNCE_LABEL_CURRENT = b"securechat v1 host key announcement, current\x00"
ANNOUNCE_LABEL_NEXT = b"securechat v1 host key announcement, next\x00"


def announce_message(label, session_id, current, nxt):
    return label + session_id + current + nxt


def verify_host_key_announcement(obj, current, session_id):
    """The next host key from a "hostkeys" event, or ProtocolError.

    Both proofs must verify for this session: one by the current key (the
    one that signed this handshake), one by the announced key.
    """
    def b64(name, size):
        v = obj.get(name)
        try:
            b = base64.b64decode(v, validate=True) if isinstance(v, str) else b""
        except ValueError:
            b = b""
        if len(b) != size or base64.b64encode(b).decode() != v:
            raise ProtocolError("hostkeys: %s is not %d bytes of base64" % (name, size))
        return b

    if obj.get("t") != "hostkeys":
        raise ProtocolError("not a hostkeys event")
    nxt = b64("next", 32)
    if nxt == current:
        raise ProtocolError("hostkeys: the next key is the current one")
    for name, label, key in (("proof_current", ANNOUNCE_LABEL_CURRENT, current),
                             ("proof_next", ANNOUNCE_LABEL_NEXT, nxt)):
        sig = b64(name, 64)
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(sig, announce_message(label, session_id, current, nxt))
        except (InvalidSignature, ValueError):
            raise ProtocolError("hostkeys: %s does not verify for this session" % name) from None
    return nxt


def record_next_host_key(path, hostport, current, nxt):
    """Append the announced key for hostport, without asking (§7.5).

    Only while the file still trusts current for hostport, never a revoked
    key, and not twice. Returns True if a line was added.
    """
    entries = read_known_hosts(path)
    if revoked_line(entries, hostport, nxt) is not None:
        raise HostKeyError("announced host key %s is REVOKED" % fingerprint(nxt))
    valid = [k for _, revoked, host, k in entries if host == hostport and not revoked]
    if current not in valid:
        raise HostKeyError("the current key of %s is not in %s" % (hostport, path))
    if nxt in valid:
        return False
    remember_host(path, hostport, nxt)
    return True


# --- connection ----------------------------------------------------------


class Connection:
    """A securechat client connection over one TCP socket."""

    def __init__(self, sock, verbose=True):
        self.sock = sock
        self.buf = b""
        self.send_dir = None
        self.recv_dir = None
        self.close_sent = False
        self.close_received = False
        self.verbose = verbose
        self.last_send = time.monotonic()

    def log(self, msg):
        if self.verbose:
            print("scclient: " + msg, file=sys.stderr, flush=True)

    # Byte stream helpers. A deadline (monotonic) bounds every wait so a
    # silent peer cannot hang a script (§14: 10 s per handshake step).
    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                raise TimeoutError
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Truncated("connection ended without CLOSE")
            self.buf += chunk

    def _take(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, deadline):
        self._fill(4, deadline)
        ftype = self.buf[0]
        length = int.from_bytes(self.buf[1:4], "big")
        if length > MAX_FRAME_BODY:  # checked on the header alone (§4)
            raise ProtocolError("frame length %d over 8192" % length)
        self._fill(4 + length, deadline)
        whole = self._take(4 + length)
        return ftype, whole

    def read_record(self, deadline):
        """Returns (type, payload) of the next record, or raises."""
        self._fill(5, deadline)
        header = self.buf[:5]
        rtype, length = check_record_header(header)
        self._fill(5 + length + TAG_LEN, deadline)
        self._take(5)
        body = self._take(length + TAG_LEN)
        payload = self.recv_dir.open(header, body)
        check_form(rtype, payload)
        return rtype, payload

    def send_records(self, records):
        # Several records in one write is invisible to the peer (§13.1).
        self.sock.sendall(b"".join(records))
        self.last_send = time.monotonic()

    def seal(self, rtype, payload):
        if self.send_dir.seq >= REKEY_RECORDS and rtype != REC_CLOSE:
            # §11: rekey our own direction well before the hard limit.
            ku = self.send_dir.seal(REC_KEY_UPDATE, b"")
            self.send_dir.rekey()
            return ku + self.send_dir.seal(rtype, payload)
        return self.send_dir.seal(rtype, payload)

    # Handshake (§5-§10).
    def handshake(self, hostport, known_hosts, pinned_fp, step_timeout=10.0):
        eph = X25519PrivateKey.generate()
        eph_priv = eph.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        ch = build_client_hello(os.urandom(32), x25519_public(eph_priv), "tcp")
        self.sock.sendall(ch)

        ftype, sh = self.read_frame(time.monotonic() + step_timeout)
        if ftype == FRAME_ABORT:
            code = sh[4] if len(sh) == 5 else None
            raise ProtocolError(
                "server sent ABORT %s (%s)"
                % ("%#04x" % code if code is not None else "?", ABORT_CODES.get(code, "unknown"))
            )
        if ftype != FRAME_SERVER_HELLO:
            raise ProtocolError("expected SERVER_HELLO, got frame type %#04x" % ftype)

        # From here until a valid FINISHED, every failure except the
        # transport's is a server authentication failure (§7.4).
        # Validate the share and the signature, then the host key, before
        # any key is derived or used (§5.2); the signature first, so that
        # only a key that signed this handshake is looked up (§7.3).
        try:
            hello = parse_server_hello(sh[4:])
            ss = x25519_shared(eph_priv, hello["key_share"])
            verify_server_signature(hello["host_key"], hello["signature"], ch, sh)
        except ServerNotAuthenticated:
            raise
        except ProtocolError as e:
            raise ServerNotAuthenticated(str(e)) from None
        finally:
            del eph, eph_priv
        how = check_known_hosts(known_hosts, hostport, hello["host_key"], pinned_fp)
        self.log("host key %s (%s)" % (fingerprint(hello["host_key"]), how))

        self.th = transcript_hash(ch, sh)  # what a user key signs (§10.2)
        ks = KeySchedule(ss, self.th)
        del ss
        self.send_dir = Direction(ks.c2s_secret_0)
        self.recv_dir = Direction(ks.s2c_secret_0)
        self.session_id = ks.session_id

        try:
            rtype, payload = self.read_record(time.monotonic() + step_timeout)
        except Truncated:
            raise  # the transport ended: a lost connection
        except ProtocolError as e:
            raise ServerNotAuthenticated("waiting for FINISHED: %s" % e) from None
        if rtype != REC_FINISHED:
            raise ServerNotAuthenticated("expected FINISHED, got %s" % REC_NAMES[rtype])
        if not hmac.compare_digest(payload, ks.server_finished()):
            raise ServerNotAuthenticated("server FINISHED does not verify")
        # Only a server that signed the transcript and proved the same keys
        # gets its host key written down (§7.3), before our FINISHED.
        if how != "known":
            remember_host(known_hosts, hostport, hello["host_key"])
        # The key this server proved; only it may vouch for a next key (§7.5).
        self.host_key = hello["host_key"]
        self.client_finished = ks.client_finished()
        del ks

    def login(self, user, password, step_timeout=10.0, corrupt_finished=False, key=None, auth=None):
        """Send FINISHED and AUTH (by key if key is given, or the payload
        auth as it is); True on success, False on AUTH_RESULT 0x01."""
        records = [self.seal(REC_FINISHED, self.client_finished)]
        if corrupt_finished:
            # Negative test only: one flipped ciphertext bit (§9.3).
            r = bytearray(records[0])
            r[5 + 16] ^= 0x01
            records[0] = bytes(r)
        if auth is None:
            auth = key_auth_payload(self.th, user, key) if key is not None else auth_payload(user, password)
        self.last_auth = auth
        records.append(self.seal(REC_AUTH, auth))
        self.send_records(records)
        rtype, payload = self.read_record(time.monotonic() + step_timeout)
        if rtype == REC_CLOSE:
            self.close_received = True
            raise ProtocolError("server sent CLOSE instead of AUTH_RESULT")
        if rtype != REC_AUTH_RESULT:
            raise ProtocolError("expected AUTH_RESULT, got %s" % REC_NAMES[rtype])
        return payload == b"\x00"

    def send_app(self, obj):
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.send_records([self.seal(REC_APP, data)])

    def recv_app(self, deadline):
        """Next chat object, None when the server sent CLOSE.

        KEY_UPDATE is handled here; anything else outside ESTABLISHED's set
        is fatal (§10.3).
        """
        while True:
            rtype, payload = self.read_record(deadline)
            if rtype == REC_KEY_UPDATE:
                self.recv_dir.rekey()
                continue
            if rtype == REC_CLOSE:
                self.close_received = True
                return None
            if rtype != REC_APP:
                raise ProtocolError("unexpected %s after login" % REC_NAMES[rtype])
            try:
                return json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                # A chat-layer problem, not a record-layer one: report it.
                return {"t": "_undecodable", "raw": payload.hex()}

    def close(self, deadline):
        """Clean end (§12): CLOSE, half-close, then wait for the server's CLOSE.

        Events still in flight before the server's CLOSE are returned so the
        caller can show them.
        """
        late = []
        if not self.close_sent:
            self.send_records([self.send_dir.seal(REC_CLOSE, b"")])
            self.close_sent = True
            self.sock.shutdown(socket.SHUT_WR)
        while not self.close_received:
            obj = self.recv_app(deadline)
            if obj is not None:
                late.append(obj)
        # After CLOSE the server ends its half: anything more is a violation.
        try:
            self._fill(1, deadline)
        except Truncated:
            return late
        raise ProtocolError("bytes after the server's CLOSE")


# --- signed messages (§13.16) ---------------------------------------------

SIGNED_LABEL = b"securechat v1 signed message\x00"
SIGNED_KINDS = ("msg", "me", "dm")
MAX_COUNTER = 2**53 - 1
STALE_MS = 15 * 60 * 1000
USER_NAME = re.compile(r"[a-z0-9_.-]{1,32}\Z")
ROOM_NAME = re.compile(r"#[a-z0-9][a-z0-9_.-]{0,31}\Z")


def signed_message(public_key, kind, target, sender, ctr, cts, text):
    """The bytes a user's key signs for one message (§13.16.2)."""
    t = text.encode("utf-8")
    return (SIGNED_LABEL + bytes([len(kind)]) + kind.encode() + bytes([len(target)]) + target.encode()
            + bytes([len(sender)]) + sender.encode() + public_key + struct.pack(">QQ", ctr, cts)
            + struct.pack(">I", len(t)) + t)


def signable(kind, target, sender, ctr, cts):
    if kind not in SIGNED_KINDS or not USER_NAME.match(sender or ""):
        return False
    if not (ROOM_NAME if kind != "dm" else USER_NAME).match(target or ""):
        return False
    return 1 <= ctr <= MAX_COUNTER and 0 <= cts <= MAX_COUNTER


def sign_message(private_key, kind, target, sender, ctr, cts, text):
    pub = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private_key.sign(signed_message(pub, kind, target, sender, ctr, cts, text))


def ssh_ed25519_blob(key):
    """The OpenSSH wire form of an Ed25519 public key."""
    return struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + key


def user_fingerprint(key):
    """OpenSSH's fingerprint (ssh-keygen -l), as §13.16.6 shows user keys."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(ssh_ed25519_blob(key)).digest()).decode().rstrip("=")


def known_users_line(who, key, revoked=False):
    line = "%s ssh-ed25519 %s" % (who, base64.b64encode(ssh_ed25519_blob(key)).decode())
    return "@revoked " + line if revoked else line


def parse_known_users(text, path="known_users"):
    """known_users lines as (line, revoked, who, key); any bad line makes
    the whole file invalid (§13.16.6)."""
    out = []
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        revoked = fields[0] == "@revoked"
        if revoked:
            fields = fields[1:]
        key = b""
        if len(fields) >= 3 and fields[1] == "ssh-ed25519":
            try:
                blob = base64.b64decode(fields[2], validate=True)
            except ValueError:
                blob = b""
            if len(blob) == 51 and blob[:19] == ssh_ed25519_blob(bytes(32))[:19]:
                key = blob[19:]
        who = fields[0] if fields else ""
        user, _, hp = who.partition("@")
        ok_who = (who == "*" and revoked) or (USER_NAME.match(user) and ":" in hp and hp.rsplit(":", 1)[0]
                                               and hp.rsplit(":", 1)[1])
        if len(key) != 32 or not ok_who or who.startswith("@"):
            raise ValueError("%s:%d: invalid known_users line" % (path, no))
        out.append((no, revoked, who, key))
    return out


class MessageVerifier:
    """The receiver's rules of §13.16.5: verified, unsigned or failed.

    Pins live in known_users (a file, or only in memory when path is None);
    own messages are checked against own_key, never pinned.
    """

    def __init__(self, own_user, hostport, path=None, policy="accept-new", own_key=None, now_ms=None,
                 ask=None):
        self.own_user, self.hostport, self.path = own_user, hostport, path
        self.policy, self.own_key, self.ask = policy, own_key, ask
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.memory = []  # pins when there is no file
        self.highest = {}
        self.replay = {}
        self.declined = set()

    def entries(self):
        if self.path is None:
            return self.memory
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as f:
            return parse_known_users(f.read(), self.path)

    def pin(self, who, key):
        if self.path is None:
            self.memory.append((len(self.memory) + 1, False, who, key))
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(known_users_line(who, key) + "\n")

    def start_replay(self, conversation):
        """A replay begins: a room's history after its room event, or ""
        for the offline DMs after welcome."""
        self.replay = {k: v for k, v in self.replay.items() if k[0] != conversation}

    def check(self, ev):
        kind = ev.get("kind")
        if kind not in SIGNED_KINDS:
            return "unsigned", ""
        sender = ev.get("from") or ""
        target = ev.get("to") if kind == "dm" else ev.get("room")
        if kind == "dm" and self.own_user not in (ev.get("to"), sender):
            return "failed", "misdirected"
        who = "%s@%s" % (sender, self.hostport)
        own = sender == self.own_user and self.own_key is not None
        try:
            entries = self.entries()
        except ValueError:
            return "failed", "key_unknown"
        pinned = [k for _, revoked, w, k in entries if w == who and not revoked]
        fields = [ev.get(k) for k in ("key", "sig", "ctr", "cts")]
        if all(f in (None, "", 0) for f in fields):
            return ("failed", "signature_missing") if own or pinned else ("unsigned", "")
        try:
            key = base64.b64decode(ev.get("key") or "", validate=True)
            sig = base64.b64decode(ev.get("sig") or "", validate=True)
        except ValueError:
            return "failed", "malformed"
        ctr, cts = ev.get("ctr"), ev.get("cts")
        if len(key) != 32 or len(sig) != 64 or type(ctr) is not int or type(cts) is not int \
                or not signable(kind, target, sender, ctr, cts):
            return "failed", "malformed"
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(
                sig, signed_message(key, kind, target, sender, ctr, cts, ev.get("text") or ""))
        except InvalidSignature:
            return "failed", "bad_signature"
        if own:
            if key != self.own_key:
                return "failed", "key_changed"
        elif any(revoked and w in (who, "*") and k == key for _, revoked, w, k in entries):
            return "failed", "key_revoked"
        elif pinned and key not in pinned:
            return "failed", "key_changed"
        elif not pinned:
            if self.policy == "strict":
                return "failed", "key_unknown"
            if self.policy == "ask":
                if (who, key) in self.declined or not (self.ask and self.ask(who, user_fingerprint(key))):
                    self.declined.add((who, key))
                    return "failed", "key_rejected"
            self.pin(who, key)
        ident = (sender, key)
        if ev.get("history"):
            conv = "" if kind == "dm" else target
            if ctr <= self.replay.get((conv,) + ident, 0):
                return "failed", "replayed"
            self.replay[(conv,) + ident] = ctr
        else:
            if ctr <= self.highest.get(ident, 0):
                return "failed", "replayed"
            if cts < self.now_ms() - STALE_MS:
                return "failed", "stale"
        self.highest[ident] = max(ctr, self.highest.get(ident, 0))
        return "verified", ""


# --- chat script (§13.3, §13.5) ------------------------------------------


def show(obj):
    print(json.dumps(obj, ensure_ascii=False, separators=(",", ":")), flush=True)


def host_keys_announced(conn, args, obj):
    """A hostkeys event as the first APP record: record the next key (§7.5).

    A refused announcement is reported and the session goes on.
    """
    if not args.known_hosts:
        return
    hostport = "%s:%d" % ("[%s]" % args.host if ":" in args.host else args.host, args.port)
    try:
        nxt = verify_host_key_announcement(obj, conn.host_key, conn.session_id)
        if record_next_host_key(args.known_hosts, hostport, conn.host_key, nxt):
            conn.log("recorded the next host key %s for %s" % (fingerprint(nxt), hostport))
    except (ProtocolError, HostKeyError) as e:
        conn.log("warning: not recording the announced host key: %s" % e)


def chat_session(conn, args):
    """hello, welcome, one message, its ack, optional linger, CLOSE."""
    pending = {}
    first = [True]
    welcomed = [False]
    hostport = "%s:%d" % ("[%s]" % args.host if ":" in args.host else args.host, args.port)
    own_key = None
    if getattr(args, "signing_key", None) is not None:
        own_key = args.signing_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    verifier = MessageVerifier(args.user, hostport, path=getattr(args, "known_users", None),
                               policy=getattr(args, "user_key_policy", None) or "accept-new", own_key=own_key)

    def pump(deadline, until=None):
        # Print events, answer pings, and stop once until(obj) is true.
        while True:
            obj = conn.recv_app(deadline)
            if obj is None:
                raise ProtocolError("server ended the session (CLOSE)")
            was_first, first[0] = first[0], False
            if obj.get("t") == "hostkeys":
                # Only the session's first APP record counts (§7.5).
                if was_first:
                    host_keys_announced(conn, args, obj)
                continue
            show(obj)
            t = obj.get("t")
            if t == "room":
                # A room's history follows its room events (§13.10).
                verifier.start_replay(obj.get("room"))
            if t == "welcome":
                verifier.start_replay("")
            if t == "msg" and obj.get("kind") in SIGNED_KINDS:
                # §13.16.5: report every signed or failed message; plain
                # unsigned ones from password users need no mark.
                status, reason = verifier.check(obj)
                if status != "unsigned" or obj.get("sig"):
                    conn.log("message %s from %s: %s%s" % (obj.get("mid"), obj.get("from"), status.upper() if status == "failed" else status,
                                                           ": " + reason if reason else ""))
            if t == "welcome":
                # One welcome per session (§13.3); a second is a violation.
                if welcomed[0]:
                    raise ProtocolError("the server sent a second welcome")
                welcomed[0] = True
            if t == "ping":
                pong = {"t": "pong"}
                if obj.get("id"):
                    pong["id"] = obj["id"]
                conn.send_app(pong)
            if t in ("ack", "error") and obj.get("id") in pending:
                pending[obj["id"]] = obj
            if until is not None and until(obj):
                return obj

    hello = {"t": "hello", "id": "h", "v": 1, "client": "scclient.py/1"}
    room = "#general"
    if args.room:
        # §13.3: the rooms named in hello replace the default room.
        room = args.room.lower()
        hello["rooms"] = [room]
    conn.send_app(hello)
    welcome = pump(
        time.monotonic() + 30,
        lambda o: o.get("id") == "h" and o.get("t") in ("welcome", "error"),
    )
    if welcome.get("t") != "welcome":
        raise ProtocolError("hello refused: %s" % welcome.get("code"))
    in_rooms = [r.get("room") for r in welcome.get("rooms") or []]
    # §13.3: the session is in the rooms it named (or #general), plus the
    # rooms the account was in at its last session (§13.15).
    if room not in in_rooms:
        raise ProtocolError("welcome puts this first session in %s, not in %s" % (in_rooms, room))

    if args.away:
        # §13.9: away, then a reply naming the message, then the ack.
        pending["away"] = None
        conn.send_app({"t": "cmd", "id": "away", "cmd": "away", "args": [args.away]})
        replies = []

        def away_answered(o):
            if o.get("t") == "reply" and o.get("id") == "away":
                replies.append(o)
            return o.get("id") == "away" and o.get("t") in ("ack", "error")

        answer = pump(time.monotonic() + 30, away_answered)
        if answer["t"] != "ack":
            raise ProtocolError("away refused: %s" % answer.get("code"))
        if len(replies) != 1 or replies[0].get("cmd") != "away" or replies[0].get("away") != args.away:
            raise ProtocolError("away: want one reply naming %r, got %s" % (args.away, replies))
        conn.log("marked away: %s" % args.away)

    base = "py-%d" % os.getpid()
    signing = own_key is not None and welcome.get("key") == base64.b64encode(own_key).decode()
    for attempt in range(2):
        # §13.5: a not_stored without mid reached nobody, and the message
        # may be sent again (a new id, and signed afresh: ctr must grow).
        mid = base if attempt == 0 else "%s-again" % base
        pending[mid] = None
        request = {"t": "msg", "id": mid, "room": room, "text": args.text}
        # Sign only a text the server will not change (§13.16.2); this client
        # does not sanitise, so a text with controls goes unsigned.
        if signing and not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", args.text):
            cts = int(time.time() * 1000)
            request["ctr"], request["cts"] = cts * 1000, cts
            request["sig"] = base64.b64encode(sign_message(args.signing_key, "msg", room, args.user, cts * 1000, cts, args.text)).decode()
        conn.send_app(request)
        answer = pump(time.monotonic() + 30, lambda o: o.get("id") == mid and o.get("t") in ("ack", "error"))
        outcome, stored_mid = message_outcome(answer)
        if outcome != "resend":
            break
        conn.log("message %s reached nobody (not_stored without mid); sending it again" % mid)
    if outcome == "resend":
        raise ProtocolError("message %s reached nobody twice" % mid)
    if outcome == "not_stored":
        conn.log("message %s delivered as mid %s but not stored" % (mid, stored_mid))
    else:
        conn.log("message %s acknowledged as mid %s" % (mid, stored_mid))

    if args.history:
        history(conn, pump, pending, room, args.history, stored_mid)

    if args.linger > 0:
        linger(conn, pump, args.linger, args.idle_ping)

    for obj in conn.close(time.monotonic() + 10):
        show(obj)
    conn.log("closed cleanly")


def message_outcome(answer):
    """What the answer to a msg request says (§13.5, §13.13): ("acked",
    mid) once stored; ("not_stored", mid) when it was delivered but could
    not be stored; ("resend", None) for a not_stored without mid, which
    reached nobody and may be sent again. Any other error is a refusal."""
    if answer.get("t") == "ack":
        return "acked", answer.get("mid")
    if answer.get("code") == "not_stored":
        if answer.get("mid"):
            return "not_stored", answer["mid"]
        return "resend", None
    raise ProtocolError("message refused: %s" % answer.get("code"))


def linger(conn, pump, seconds, idle):
    """Print events for seconds. After idle seconds without sending
    anything, send ping (§3: a client SHOULD, so that a restarted server
    can tell it its connection is gone; §13.11) and log the pong that
    answers it."""
    end = time.monotonic() + seconds
    waiting, n = None, 0
    while time.monotonic() < end:
        due = conn.last_send + idle if idle > 0 else end
        if time.monotonic() >= due:
            n += 1
            waiting = "k%d" % n
            conn.send_app({"t": "ping", "id": waiting})
            continue
        try:
            pong = pump(min(end, due), lambda o: o.get("t") == "pong")
        except TimeoutError:
            continue
        if waiting is not None and pong.get("id") == waiting:
            conn.log("the server answered ping %s" % waiting)
            waiting = None


def history(conn, pump, pending, room, n, own_mid):
    """/history N (§13.15): msg events marked history, oldest first, then a
    reply naming the oldest mid, then the ack. Pages back once with
    "before" when the first page was full."""
    before = None
    for page in range(2):
        rid = "hist-%d" % page
        args = [str(n)] if before is None else ["before", str(before), str(n)]
        pending[rid] = None
        conn.send_app({"t": "cmd", "id": rid, "cmd": "history", "room": room, "args": args})
        msgs, replies = [], []

        def collect(o):
            if o.get("t") == "msg" and o.get("history") and o.get("room") == room and o.get("kind") in ("msg", "me", "topic"):
                msgs.append(o)
            if o.get("t") == "reply" and o.get("id") == rid:
                replies.append(o)
            return o.get("id") == rid and o.get("t") in ("ack", "error")

        answer = pump(time.monotonic() + 30, collect)
        if answer["t"] != "ack":
            raise ProtocolError("history refused: %s" % answer.get("code"))
        if len(replies) != 1 or replies[0].get("cmd") != "history":
            raise ProtocolError("history: want one reply, got %s" % replies)
        mids = [m.get("mid") for m in msgs]
        if mids != sorted(mids) or len(set(mids)) != len(mids) or len(mids) > n:
            raise ProtocolError("history: mids %s are not increasing and at most %d" % (mids, n))
        if before is not None and mids and mids[-1] >= before:
            raise ProtocolError("history before %d returned mid %d" % (before, mids[-1]))
        if mids and replies[0].get("mid") != mids[0]:
            raise ProtocolError("history reply names mid %s, the oldest is %s" % (replies[0].get("mid"), mids[0]))
        if page == 0 and own_mid not in mids:
            raise ProtocolError("history does not hold this client's own message %s" % own_mid)
        conn.log("history page %d of %s: %d message(s)" % (page, room, len(mids)))
        if len(mids) < n:
            return
        before = mids[0]


def read_password(path):
    with open(path, encoding="utf-8") as f:
        pw = f.read()
    # Same convention as the reference client: one trailing newline removed.
    if pw.endswith("\r\n"):
        pw = pw[:-2]
    elif pw.endswith("\n"):
        pw = pw[:-1]
    return pw


def main(argv=None):
    p = argparse.ArgumentParser(description="independent securechat v1 client (TCP, x25519)")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", help="password file; never on argv")
    p.add_argument("--identity", help="log in with this OpenSSH Ed25519 private key file instead (§10.2, method 0x02)")
    p.add_argument("--passphrase-file", help="passphrase of the --identity key (needs the bcrypt module)")
    p.add_argument("--fingerprint", help="expected host key, SHA256:...")
    p.add_argument("--known-hosts", help="known hosts file (trust on first use)")
    p.add_argument("--room", help="room to be in instead of #general (sent in hello)")
    p.add_argument("--text", default="hello from the Python client")
    p.add_argument("--away", help="mark this user away with this text after login (§13.9)")
    p.add_argument("--history", type=int, default=0, help="after the message, ask for /history N of the room (§13.15)")
    p.add_argument("--linger", type=float, default=0, help="seconds to keep printing events before CLOSE")
    p.add_argument("--idle-ping", type=float, default=15,
                   help="while lingering, ping the server after this many seconds of sending nothing (§3, §13.11); 0: never")
    p.add_argument("--known-users", help="known_users file pinning users' signing keys (§13.16.6); default: in memory")
    p.add_argument("--user-key-policy", choices=("ask", "accept-new", "strict"), default="accept-new",
                   help="users not yet pinned: accept-new (default) or strict; ask is refused: a script cannot ask")
    args = p.parse_args(argv)

    if not args.fingerprint and not args.known_hosts:
        print("scclient: refusing to connect: give --fingerprint or --known-hosts", file=sys.stderr)
        return 2
    if bool(args.password_file) == bool(args.identity):
        print("scclient: give one of --password-file and --identity", file=sys.stderr)
        return 2
    password, key = None, None
    if args.password_file:
        password = read_password(args.password_file)
    else:
        passphrase = read_password(args.passphrase_file).encode() if args.passphrase_file else None
        try:
            key = load_identity(args.identity, passphrase)
        except (ValueError, TypeError, OSError) as e:
            print("scclient: --identity: %s" % e, file=sys.stderr)
            return 1
    if args.user_key_policy == "ask":
        print("scclient: --user-key-policy ask needs a terminal; use accept-new or strict", file=sys.stderr)
        return 2
    args.signing_key = key
    host = "[%s]" % args.host if ":" in args.host else args.host
    hostport = "%s:%d" % (host, args.port)

    try:
        sock = socket.create_connection((args.host, args.port), timeout=10)
    except OSError as e:
        print("scclient: connect: %s" % e, file=sys.stderr)
        return 5
    sock.settimeout(None)
    conn = Connection(sock)
    try:
        conn.handshake(hostport, args.known_hosts, args.fingerprint)
        if not conn.login(args.user, password, key=key):
            # Only one attempt: a script has no other password to try, so it
            # ends the session itself (§10.2).
            conn.log("authentication failed (AUTH_RESULT 0x01)")
            try:
                conn.close(time.monotonic() + 5)
            except (ProtocolError, TimeoutError, OSError):
                pass
            return 3
        # The server logs a prefix of session_id (§8); printing the same
        # prefix lets the two logs be matched up.
        conn.log("logged in as %s, session %s" % (args.user, conn.session_id.hex()[:12]))
        conn.log("login method: %s" % ("publickey" if key else "password"))
        chat_session(conn, args)
        return 0
    except HostKeyError as e:
        print("scclient: %s" % e, file=sys.stderr)
        return 4
    except ServerNotAuthenticated as e:
        # §7.4: an impostor or an attacker in the path; never retried.
        print("scclient: the server could not be authenticated: %s" % e, file=sys.stderr)
        return 4
    except Truncated as e:
        print("scclient: truncation: %s" % e, file=sys.stderr)
        return 5
    except TimeoutError:
        print("scclient: timed out waiting for the server", file=sys.stderr)
        return 5
    except OSError as e:
        # A server may drop a connection before SERVER_HELLO (load, or a
        # penalised source); that is a lost connection, not a protocol error.
        print("scclient: connection lost: %s" % e, file=sys.stderr)
        return 5
    except ProtocolError as e:
        # §9.3: stop, send nothing more, close.
        print("scclient: protocol error: %s" % e, file=sys.stderr)
        return 1
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
