#!/usr/bin/python3
"""ML-KEM-768 (FIPS 203), written from the standard for checking test vectors.

Only what interop/test_vectors.py needs: key generation from the 64-byte
seed d || z (ML-KEM.KeyGen_internal, Algorithm 16), derandomized
encapsulation from 32 bytes m (ML-KEM.Encaps_internal, Algorithm 17) and
decapsulation (ML-KEM.Decaps_internal, Algorithm 18), plus the modulus
check on an encapsulation key (§7.2).

It is plain Python on hashlib, slow and NOT constant time: use it for known
answers only, never for live keys.
"""

import hashlib

N = 256
Q = 3329
K = 3
ETA1 = 2
ETA2 = 2
DU = 10
DV = 4

EK_SIZE = 384 * K + 32  # 1184
DK_SIZE = 768 * K + 96  # 2400
CT_SIZE = 32 * (DU * K + DV)  # 1088


def _bitrev7(i):
    return int("{:07b}".format(i)[::-1], 2)


# zeta = 17 is a primitive 256th root of unity mod q (§4.3).
ZETAS = [pow(17, _bitrev7(i), Q) for i in range(128)]
GAMMAS = [pow(17, 2 * _bitrev7(i) + 1, Q) for i in range(128)]


# --- hash functions (§4.1) ----------------------------------------------


def H(s):
    return hashlib.sha3_256(s).digest()


def J(s):
    return hashlib.shake_256(s).digest(32)


def G(s):
    d = hashlib.sha3_512(s).digest()
    return d[:32], d[32:]


def PRF(eta, s, b):
    return hashlib.shake_256(s + bytes([b])).digest(64 * eta)


# --- encoding (§4.2.1) --------------------------------------------------


def byte_encode(f, d):
    """Algorithm 5: 256 d-bit integers, least significant bit first."""
    acc = 0
    for i, a in enumerate(f):
        acc |= (a % (1 << d)) << (i * d)
    return acc.to_bytes(32 * d, "little")


def byte_decode(b, d):
    """Algorithm 6; for d = 12 the values are reduced mod q."""
    acc = int.from_bytes(b, "little")
    mask = (1 << d) - 1
    m = Q if d == 12 else 1 << d
    return [((acc >> (i * d)) & mask) % m for i in range(N)]


def compress(x, d):
    # round((2^d / q) * x) mod 2^d, with ties rounded up.
    return ((x << d) + Q // 2) // Q % (1 << d)


def decompress(y, d):
    # round((q / 2^d) * y), ties rounded up.
    return (y * Q + (1 << (d - 1))) >> d


# --- sampling (§4.2.2) --------------------------------------------------


def sample_ntt(seed):
    """Algorithm 7: rejection sampling of an NTT-domain polynomial."""
    n = 168 * 5
    while True:
        stream = hashlib.shake_128(seed).digest(n)
        a, pos = [], 0
        while len(a) < N and pos + 3 <= len(stream):
            c0, c1, c2 = stream[pos], stream[pos + 1], stream[pos + 2]
            pos += 3
            d1 = c0 + 256 * (c1 % 16)
            d2 = c1 // 16 + 16 * c2
            if d1 < Q:
                a.append(d1)
            if d2 < Q and len(a) < N:
                a.append(d2)
        if len(a) == N:
            return a
        n *= 2  # the stream was too short; read a longer prefix of it


def sample_cbd(b, eta):
    """Algorithm 8: centered binomial distribution from 64*eta bytes."""
    bits = int.from_bytes(b, "little")
    f = []
    for i in range(N):
        x = sum((bits >> (2 * i * eta + j)) & 1 for j in range(eta))
        y = sum((bits >> (2 * i * eta + eta + j)) & 1 for j in range(eta))
        f.append((x - y) % Q)
    return f


# --- NTT (§4.3) ---------------------------------------------------------


def ntt(f):
    """Algorithm 9."""
    f = list(f)
    i, length = 1, 128
    while length >= 2:
        for start in range(0, N, 2 * length):
            zeta = ZETAS[i]
            i += 1
            for j in range(start, start + length):
                t = zeta * f[j + length] % Q
                f[j + length] = (f[j] - t) % Q
                f[j] = (f[j] + t) % Q
        length //= 2
    return f


def ntt_inv(f):
    """Algorithm 10."""
    f = list(f)
    i, length = 127, 2
    while length <= 128:
        for start in range(0, N, 2 * length):
            zeta = ZETAS[i]
            i -= 1
            for j in range(start, start + length):
                t = f[j]
                f[j] = (t + f[j + length]) % Q
                f[j + length] = zeta * (f[j + length] - t) % Q
        length *= 2
    return [x * 3303 % Q for x in f]  # 3303 = 128^-1 mod q


def multiply_ntts(f, g):
    """Algorithms 11 and 12: products of degree-one polynomials mod X^2 - gamma."""
    h = [0] * N
    for i in range(128):
        a0, a1, b0, b1 = f[2 * i], f[2 * i + 1], g[2 * i], g[2 * i + 1]
        h[2 * i] = (a0 * b0 + a1 * b1 * GAMMAS[i]) % Q
        h[2 * i + 1] = (a0 * b1 + a1 * b0) % Q
    return h


def add(f, g):
    return [(a + b) % Q for a, b in zip(f, g)]


def sub(f, g):
    return [(a - b) % Q for a, b in zip(f, g)]


def matrix(rho):
    """A_hat[i][j] = SampleNTT(rho || j || i) (Algorithm 13 line 4)."""
    return [[sample_ntt(rho + bytes([j, i])) for j in range(K)] for i in range(K)]


# --- K-PKE (§5) ---------------------------------------------------------


def kpke_keygen(d):
    """Algorithm 13."""
    rho, sigma = G(d + bytes([K]))
    a = matrix(rho)
    n = 0
    s, e = [], []
    for _ in range(K):
        s.append(sample_cbd(PRF(ETA1, sigma, n), ETA1))
        n += 1
    for _ in range(K):
        e.append(sample_cbd(PRF(ETA1, sigma, n), ETA1))
        n += 1
    s_hat = [ntt(p) for p in s]
    e_hat = [ntt(p) for p in e]
    t_hat = []
    for i in range(K):
        acc = e_hat[i]
        for j in range(K):
            acc = add(acc, multiply_ntts(a[i][j], s_hat[j]))
        t_hat.append(acc)
    ek = b"".join(byte_encode(p, 12) for p in t_hat) + rho
    dk = b"".join(byte_encode(p, 12) for p in s_hat)
    return ek, dk


def kpke_encrypt(ek, m, r):
    """Algorithm 14."""
    t_hat = [byte_decode(ek[384 * i : 384 * (i + 1)], 12) for i in range(K)]
    rho = ek[384 * K :]
    a = matrix(rho)
    n = 0
    y, e1 = [], []
    for _ in range(K):
        y.append(sample_cbd(PRF(ETA1, r, n), ETA1))
        n += 1
    for _ in range(K):
        e1.append(sample_cbd(PRF(ETA2, r, n), ETA2))
        n += 1
    e2 = sample_cbd(PRF(ETA2, r, n), ETA2)
    y_hat = [ntt(p) for p in y]
    u = []
    for i in range(K):
        acc = [0] * N
        for j in range(K):
            acc = add(acc, multiply_ntts(a[j][i], y_hat[j]))  # A transposed
        u.append(add(ntt_inv(acc), e1[i]))
    mu = [decompress(b, 1) for b in byte_decode(m, 1)]
    acc = [0] * N
    for j in range(K):
        acc = add(acc, multiply_ntts(t_hat[j], y_hat[j]))
    v = add(add(ntt_inv(acc), e2), mu)
    c1 = b"".join(byte_encode([compress(x, DU) for x in p], DU) for p in u)
    c2 = byte_encode([compress(x, DV) for x in v], DV)
    return c1 + c2


def kpke_decrypt(dk, c):
    """Algorithm 15."""
    step = 32 * DU
    u = [[decompress(x, DU) for x in byte_decode(c[step * i : step * (i + 1)], DU)] for i in range(K)]
    v = [decompress(x, DV) for x in byte_decode(c[step * K :], DV)]
    s_hat = [byte_decode(dk[384 * i : 384 * (i + 1)], 12) for i in range(K)]
    acc = [0] * N
    for i in range(K):
        acc = add(acc, multiply_ntts(s_hat[i], ntt(u[i])))
    w = sub(v, ntt_inv(acc))
    return byte_encode([compress(x, 1) for x in w], 1)


# --- ML-KEM (§6) --------------------------------------------------------


def keygen(seed):
    """ML-KEM.KeyGen_internal(d, z) with seed = d || z (64 bytes): (ek, dk)."""
    if len(seed) != 64:
        raise ValueError("ML-KEM seed must be 64 bytes")
    d, z = seed[:32], seed[32:]
    ek, dk_pke = kpke_keygen(d)
    return ek, dk_pke + ek + H(ek) + z


def ek_valid(ek):
    """The encapsulation key modulus check of FIPS 203 §7.2."""
    if len(ek) != EK_SIZE:
        return False
    return all(
        byte_encode(byte_decode(ek[384 * i : 384 * (i + 1)], 12), 12) == ek[384 * i : 384 * (i + 1)]
        for i in range(K)
    )


def encaps(ek, m):
    """ML-KEM.Encaps_internal(ek, m): (shared key, ciphertext)."""
    if not ek_valid(ek):
        raise ValueError("ML-KEM encapsulation key fails the modulus check")
    if len(m) != 32:
        raise ValueError("ML-KEM encapsulation randomness must be 32 bytes")
    key, r = G(m + H(ek))
    return key, kpke_encrypt(ek, m, r)


def decaps(dk, c):
    """ML-KEM.Decaps_internal(dk, c), with implicit rejection."""
    if len(dk) != DK_SIZE or len(c) != CT_SIZE:
        raise ValueError("ML-KEM decapsulation key or ciphertext of the wrong size")
    dk_pke = dk[: 384 * K]
    ek = dk[384 * K : 768 * K + 32]
    h = dk[768 * K + 32 : 768 * K + 64]
    z = dk[768 * K + 64 :]
    m = kpke_decrypt(dk_pke, c)
    key, r = G(m + h)
    rejected = J(z + c)
    if kpke_encrypt(ek, m, r) != c:
        return rejected
    return key
