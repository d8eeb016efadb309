#!/usr/bin/python3
"""Failure behaviour of a live server, checked against PROTOCOL.md.

Each check opens its own connection with interop/scclient.py and looks at
the raw bytes the server sends back:
  - a flipped bit in a record (client FINISHED, or an APP record once
    logged in) closes the connection with nothing sent (§9.3), and so do bad
    padding, a wrong type, a bad length and a correctly tagged plaintext
    over 16384 bytes; a CLOSE in place of the client's FINISHED gets no
    CLOSE back (§10.3);
  - a wrong password gets AUTH_RESULT 0x01, and the third one also CLOSE
    (§10.2);
  - malformed or unacceptable CLIENT_HELLOs get the ABORT code of §5.1;
  - dropping the connection without CLOSE is not a clean end (§12): the
    caller compares the server log for the last check with a clean one;
  - the Python client itself, through a relay that tampers with the
    server's SERVER_HELLO signature or FINISHED, reports a server
    authentication failure and records no host key (§7.3, §7.4);
  - with --identity, and only that: a key AUTH captured in one session is
    refused in another, like an unknown key, and a fresh one succeeds
    (§10.2).

Usage: python3 interop/negative_checks.py --host H --port N --user U \
           --password-file F --fingerprint SHA256:... [--identity KEYFILE]
Exits non-zero if any check fails. Run it while no other client is chatting,
so that no event from someone else lands in the "nothing sent" windows.
"""

import argparse
import hashlib
import hmac
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scclient as sc  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402


def connect(args):
    s = socket.create_connection((args.host, args.port), timeout=10)
    s.settimeout(None)
    return s


def drain_raw(conn, timeout=5.0):
    """Bytes the server still sends until it closes: (count, how it ended)."""
    got = len(conn.buf)
    conn.sock.settimeout(timeout)
    try:
        while True:
            chunk = conn.sock.recv(65536)
            if not chunk:
                return got, "FIN"
            got += len(chunk)
    except ConnectionResetError:
        return got, "RST"
    except socket.timeout:
        return got, "still open"


def established(args, password):
    conn = sc.Connection(connect(args), verbose=False)
    conn.handshake("%s:%d" % (args.host, args.port), None, args.fingerprint)
    return conn, conn.login(args.user, password)


def check_flipped_finished(args, password):
    conn = sc.Connection(connect(args), verbose=False)
    conn.handshake("%s:%d" % (args.host, args.port), None, args.fingerprint)
    try:
        conn.login(args.user, password, corrupt_finished=True)
        return False, "server answered a corrupted FINISHED"
    except sc.Truncated:
        pass
    n, how = drain_raw(conn)
    return n == 0 and how in ("FIN", "RST"), "%d bytes after the bad record, then %s" % (n, how)


def check_close_before_finished(args):
    """CLOSE in place of the client's FINISHED is fatal, not an orderly end
    (§10.3): the server closes without a CLOSE of its own."""
    conn = sc.Connection(connect(args), verbose=False)
    conn.handshake("%s:%d" % (args.host, args.port), None, args.fingerprint)
    conn.send_records([conn.seal(sc.REC_CLOSE, b"")])
    n, how = drain_raw(conn)
    return n == 0 and how in ("FIN", "RST"), "%d bytes after the CLOSE, then %s" % (n, how)


def check_flipped_app(args, password):
    conn, ok = established(args, password)
    if not ok:
        return False, "login failed"
    conn.send_app({"t": "hello", "id": "h", "v": 1, "client": "negative_checks.py"})
    # Read the welcome and whatever follows it until the server goes quiet,
    # so that anything arriving later can only be an answer to the bad record.
    while True:
        try:
            conn.recv_app(time.monotonic() + 1.0)
        except TimeoutError:
            break
    rec = bytearray(conn.seal(sc.REC_APP, b'{"t":"ping","id":"p"}'))
    rec[5 + 16 + 3] ^= 0x04  # one ciphertext bit; the tag no longer matches
    conn.sock.sendall(bytes(rec))
    n, how = drain_raw(conn)
    return n == 0 and how in ("FIN", "RST"), "%d bytes after the bad record, then %s" % (n, how)


def raw_record(d, rtype, padded, length=None):
    """A record with a correct tag around arbitrary (maybe badly padded) data.

    Only a peer holding the keys can build one; it shows whether a padding
    or type failure looks any different from a MAC failure (§9.3).
    """
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(d.enc_key), modes.CBC(iv)).encryptor()
    ct = enc.update(padded) + enc.finalize()
    header = struct.pack(">BI", rtype, len(iv) + len(ct) if length is None else length)
    tag = hmac.new(d.mac_key, b"SCv1 rec" + struct.pack(">Q", d.seq) + header + iv + ct,
                   hashlib.sha256).digest()
    d.seq += 1
    return header + iv + ct + tag


def check_uniform_errors(args, password):
    """Bad MAC, bad padding, a wrong record type, a bad length and an oversize
    plaintext, once logged in."""
    outcomes = {}
    for name in ("bad MAC", "bad padding", "FINISHED when established", "length 40",
                 "plaintext 16385 bytes"):
        conn, ok = established(args, password)
        if not ok:
            return False, "login failed"
        d = conn.send_dir
        if name == "bad MAC":
            rec = bytearray(conn.seal(sc.REC_APP, b'{"t":"ping"}'))
            rec[-1] ^= 1
            rec = bytes(rec)
        elif name == "bad padding":
            rec = raw_record(d, sc.REC_APP, b'{"t":"ping"}' + bytes(4))  # last byte 0
        elif name == "plaintext 16385 bytes":
            # Fits the length field (16416) with 15 bytes of padding, but is
            # over the §9.2 cap: fatal, not a chat-layer error.
            obj = b'{"t":"ping","id":"p","pad":"' + b"x" * (16385 - 30) + b'"}'
            assert len(obj) == 16385
            rec = raw_record(d, sc.REC_APP, sc.pkcs7_pad(obj))
        elif name == "FINISHED when established":
            rec = conn.seal(sc.REC_FINISHED, bytes(32))
        else:
            rec = b"\x20\x00\x00\x00\x28" + bytes(40 + 32)
        # Let the login's own output (nothing, before hello) settle first.
        time.sleep(0.2)
        conn.sock.sendall(rec)
        outcomes[name] = drain_raw(conn)
    seen = set(outcomes.values())
    note = "; ".join("%s: %d bytes, %s" % (k, n, how) for k, (n, how) in outcomes.items())
    return all(n == 0 and how in ("FIN", "RST") for n, how in seen), note


def check_wrong_password(args, password):
    """Three wrong passwords: 0x01, 0x01, then 0x01 followed by CLOSE."""
    conn = sc.Connection(connect(args), verbose=False)
    conn.handshake("%s:%d" % (args.host, args.port), None, args.fingerprint)
    results = []
    if conn.login(args.user, password):
        return False, "server accepted the wrong password"
    results.append("0x01")
    for _ in range(2):
        conn.send_records([conn.seal(sc.REC_AUTH, sc.auth_payload(args.user, password))])
        rtype, payload = conn.read_record(time.monotonic() + 10)
        if rtype != sc.REC_AUTH_RESULT or payload != b"\x01":
            return False, "expected AUTH_RESULT 0x01, got %s %s" % (sc.REC_NAMES[rtype], payload.hex())
        results.append("0x01")
    rtype, payload = conn.read_record(time.monotonic() + 10)
    if rtype != sc.REC_CLOSE:
        return False, "after the third failure: %s, not CLOSE" % sc.REC_NAMES[rtype]
    results.append("CLOSE")
    n, how = drain_raw(conn)
    results.append("%d more bytes, %s" % (n, how))
    return n == 0 and how == "FIN", ", ".join(results)


def check_key_replay(args, key):
    """§10.2: a key AUTH captured in one session is refused in another
    (0x01, the byte a wrong password gets), as is a key the server does
    not know; the same connection then logs in with a fresh signature."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    hostport = "%s:%d" % (args.host, args.port)
    first = sc.Connection(connect(args), verbose=False)
    first.handshake(hostport, None, args.fingerprint)
    if not first.login(args.user, None, key=key):
        return False, "the key login itself failed"
    captured = first.last_auth
    first.close(time.monotonic() + 5)

    conn = sc.Connection(connect(args), verbose=False)
    conn.handshake(hostport, None, args.fingerprint)
    notes = []
    if conn.login(args.user, None, auth=captured):
        return False, "server accepted a key AUTH from another session"
    notes.append("replayed: 0x01")
    stranger = sc.key_auth_payload(conn.th, args.user, Ed25519PrivateKey.generate())
    conn.send_records([conn.seal(sc.REC_AUTH, stranger)])
    rtype, payload = conn.read_record(time.monotonic() + 10)
    if rtype != sc.REC_AUTH_RESULT or payload != b"\x01":
        return False, "unknown key: %s %s, not AUTH_RESULT 0x01" % (sc.REC_NAMES[rtype], payload.hex())
    notes.append("unknown key: 0x01")
    conn.send_records([conn.seal(sc.REC_AUTH, sc.key_auth_payload(conn.th, args.user, key))])
    rtype, payload = conn.read_record(time.monotonic() + 10)
    if rtype != sc.REC_AUTH_RESULT or payload != b"\x00":
        return False, "fresh signature: %s %s, not AUTH_RESULT 0x00" % (sc.REC_NAMES[rtype], payload.hex())
    notes.append("signed for this session: 0x00")
    conn.close(time.monotonic() + 5)
    return True, ", ".join(notes)


def abort_code(args, hello_frame):
    s = connect(args)
    s.sendall(hello_frame)
    data = b""
    s.settimeout(10)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    s.close()
    return data


# PROTOCOL.md §6: the ffdhe3072 id and share length. A server SHOULD NOT
# allow it unless told to, and the live server runs with its defaults.
GROUP_FFDHE3072 = 0x0101
FFDHE_SHARE_LEN = 384


def client_hello_body(transport=b"tcp", groups=(sc.GROUP_X25519,), sig_algs=(sc.SIG_ED25519,),
                      versions=(sc.VERSION_1,)):
    def share(g):
        return os.urandom(FFDHE_SHARE_LEN if g == GROUP_FFDHE3072 else 32)
    return (
        sc.MAGIC + sc.u16_list(list(versions)) + os.urandom(32) + sc.opaque8(transport)
        + sc.u16_list(list(groups))
        + struct.pack(">B", len(groups))
        + b"".join(struct.pack(">H", g) + sc.opaque16(share(g)) for g in groups)
        + sc.u16_list(list(sig_algs)) + sc.opaque16(b"")
    )


def check_aborts(args):
    cases = [
        ("transport quic over TCP", sc.frame(sc.FRAME_CLIENT_HELLO, client_hello_body(transport=b"quic")), b"\x7f\x00\x00\x01\x03"),
        ("only version 2", sc.frame(sc.FRAME_CLIENT_HELLO, client_hello_body(versions=(2,))), b"\x7f\x00\x00\x01\x01"),
        ("only an unknown group", sc.frame(sc.FRAME_CLIENT_HELLO, client_hello_body(groups=(0x7777,))), b"\x7f\x00\x00\x01\x02"),
        ("only ffdhe3072, off by default", sc.frame(sc.FRAME_CLIENT_HELLO, client_hello_body(groups=(GROUP_FFDHE3072,))),
         b"\x7f\x00\x00\x01\x02"),
        ("no Ed25519", sc.frame(sc.FRAME_CLIENT_HELLO, client_hello_body(sig_algs=(0x0403,))), b"\x7f\x00\x00\x01\x02"),
        ("header length 8193", b"\x01\x00\x20\x01", b"\x7f\x00\x00\x01\x03"),
        ("first frame not CLIENT_HELLO", sc.frame(sc.FRAME_SERVER_HELLO, b"x"), b""),
    ]
    ok, notes = True, []
    for name, frame, want in cases:
        got = abort_code(args, frame)
        good = got == want
        ok &= good
        notes.append("%s: %s%s" % (name, got.hex() or "closed, nothing sent", "" if good else " (want %s)" % want.hex()))
    return ok, "; ".join(notes)


def check_truncation(args, password):
    """Log in, then drop TCP without CLOSE; the server log must not call it clean."""
    conn, ok = established(args, password)
    if not ok:
        return False, "login failed"
    conn.send_app({"t": "hello", "id": "h", "v": 1, "client": "truncation-check"})
    conn.recv_app(time.monotonic() + 10)
    conn.sock.close()
    return True, "dropped without CLOSE (see the server log)"


def tampering_relay(args, tamper):
    """One-connection relay to the server; tamper is "signature" or "finished".

    Returns the port to connect to. The relay flips the last byte of the
    SERVER_HELLO (its signature) or of the first record (the FINISHED tag),
    as an attacker in the path would, and copies everything else.
    """
    ln = socket.socket()
    ln.bind(("127.0.0.1", 0))
    ln.listen(1)

    def copy(src, dst):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def read_exact(s, n):
        out = b""
        while len(out) < n:
            b = s.recv(n - len(out))
            if not b:
                raise OSError("relay: short read")
            out += b
        return out

    def run():
        c, _ = ln.accept()
        ln.close()
        up = connect(args)
        threading.Thread(target=copy, args=(c, up), daemon=True).start()
        try:
            hdr = read_exact(up, 4)
            sh = bytearray(hdr + read_exact(up, int.from_bytes(hdr[1:4], "big")))
            if tamper == "signature":
                sh[-1] ^= 0x01
            c.sendall(bytes(sh))
            if tamper == "finished":
                rh = read_exact(up, 5)
                rec = bytearray(rh + read_exact(up, struct.unpack(">I", rh[1:5])[0] + sc.TAG_LEN))
                rec[-1] ^= 0x01
                c.sendall(bytes(rec))
        except OSError:
            pass
        copy(up, c)
        c.close()
        up.close()

    threading.Thread(target=run, daemon=True).start()
    return ln.getsockname()[1]


def check_impostor_not_recorded(args, tamper):
    """§7.3/§7.4 in this client: a tampered handshake pins nothing."""
    with tempfile.TemporaryDirectory() as d:
        kh = os.path.join(d, "known_hosts")
        port = tampering_relay(args, tamper)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.settimeout(None)
        conn = sc.Connection(s, verbose=False)
        try:
            conn.handshake("127.0.0.1:%d" % port, kh, None)
            return False, "handshake succeeded through the tampering relay"
        except sc.ServerNotAuthenticated as e:
            note = "server not authenticated (%s)" % e
        finally:
            s.close()
        if os.path.exists(kh):
            return False, "known_hosts written: %r" % open(kh).read()
        return True, note + "; known_hosts untouched"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--fingerprint", required=True)
    p.add_argument("--identity", help="an Ed25519 key of --user (OpenSSH file): run the key replay check instead")
    args = p.parse_args()
    password = sc.read_password(args.password_file)
    wrong = password + "-not-it"

    failed = 0
    checks = [
        ("flipped bit in client FINISHED", lambda: check_flipped_finished(args, password)),
        ("CLOSE before the client's FINISHED", lambda: check_close_before_finished(args)),
        ("flipped bit in an APP record", lambda: check_flipped_app(args, password)),
        ("uniform record errors", lambda: check_uniform_errors(args, password)),
        ("wrong password x3", lambda: check_wrong_password(args, wrong)),
        ("ABORT codes", lambda: check_aborts(args)),
        ("truncation", lambda: check_truncation(args, password)),
        ("bad signature pins nothing", lambda: check_impostor_not_recorded(args, "signature")),
        ("bad FINISHED pins nothing", lambda: check_impostor_not_recorded(args, "finished")),
    ]
    if args.identity:
        # On its own: it ends with a key login that must succeed, which the
        # penalties earned by the checks above could refuse (§14).
        checks = [("key AUTH replayed in another session",
                   lambda: check_key_replay(args, sc.load_identity(args.identity)))]
    for name, fn in checks:
        try:
            ok, note = fn()
        except (sc.ProtocolError, TimeoutError, OSError) as e:
            ok, note = False, "%s: %s" % (type(e).__name__, e)
        failed += not ok
        print("%s %s: %s" % ("ok  " if ok else "FAIL", name, note), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
