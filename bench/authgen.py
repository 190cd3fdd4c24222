#!/usr/bin/env python3
"""Credentials for bench/auth.sh: API keys in Turnpike's keys-file format, their consumers,
an RSA key pair and RS256 tokens.

    authgen.py keys DIR N        key_secret, keys.json (N keys), consumers.yaml, api-key.txt
    authgen.py jwt DIR M         rsa-priv.pem, rsa-pub.pem, token.jwt, and M distinct tokens
                                 in tokens.txt (one per line; M = 0 writes none)
    authgen.py hash SECRET_FILE KEY
                                 prints hmac-sha256:<hex> of KEY, as Turnpike stores it

The key format follows crates/turnpike-policy/src/key_auth.rs: a key is
`tp_<12 base62 id>_<43 base62 secret>` and the keys file stores
`hmac-sha256:<hex of HMAC-SHA256(key_secret, whole key)>` under `{"keys": [...]}` with the
consumer's name. Consumer i is `c<i>` and owns key i. bench/auth.sh checks the format against
`turnpike keys create` and with a request before measuring.
"""

import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from multiprocessing import Pool

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 2100-01-01T00:00:00Z: the tokens outlive any benchmark.
FAR_EXP = 4102444800


def base62(n):
    """Uniform base62 characters by rejection sampling, as key_auth.rs makes them."""
    out = ""
    while len(out) < n:
        out += "".join(BASE62[b % 62] for b in os.urandom(2 * n) if b < 248)
    return out[:n]


def key_hash(secret, key):
    tag = hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()
    return "hmac-sha256:" + tag


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def make_keys(out, n):
    secret = secrets.token_urlsafe(32)  # 43 characters; Turnpike asks for at least 16
    keys, ids, last_key = [], set(), None
    for i in range(n):
        kid = base62(12)
        while kid in ids:  # 62^12 ids: a clash is practically impossible, but must not happen
            kid = base62(12)
        ids.add(kid)
        last_key = f"tp_{kid}_{base62(43)}"
        keys.append({"consumer": f"c{i}", "id": kid, "hash": key_hash(secret, last_key)})
    write(os.path.join(out, "key_secret"), secret)
    write(os.path.join(out, "keys.json"), json.dumps({"keys": keys}, indent=1) + "\n")
    write(os.path.join(out, "consumers.yaml"),
          "consumers:\n" + "".join(f"  - {{name: c{i}}}\n" for i in range(n)))
    # The key of the last consumer: the benchmark sends it on every /key request.
    write(os.path.join(out, "api-key.txt"), (last_key or "") + "\n")


_private_key = None


def _init_signer(pem):
    global _private_key
    from cryptography.hazmat.primitives import serialization

    _private_key = serialization.load_pem_private_key(pem, password=None)


def _sign(args):
    import jwt

    sub, jti = args
    claims = {"sub": sub, "iat": int(time.time()), "exp": FAR_EXP}
    if jti is not None:
        claims["jti"] = str(jti)
    return jwt.encode(claims, _private_key, algorithm="RS256")


def make_jwt(out, m):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv_pem = priv.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    pub_pem = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(os.path.join(out, "rsa-priv.pem"), "wb") as f:
        f.write(priv_pem)
    with open(os.path.join(out, "rsa-pub.pem"), "wb") as f:
        f.write(pub_pem)
    _init_signer(priv_pem)
    write(os.path.join(out, "token.jwt"), _sign(("jwt-bench", None)) + "\n")
    # Distinct tokens (distinct jti) so the verified-token cache cannot serve them; signing
    # is the slow part (about 1 ms each), so it uses every core.
    with Pool(os.cpu_count() or 1, initializer=_init_signer, initargs=(priv_pem,)) as pool:
        tokens = pool.map(_sign, [("jwt-bench", i) for i in range(m)], chunksize=256)
    write(os.path.join(out, "tokens.txt"), "".join(t + "\n" for t in tokens))


def main(argv):
    if len(argv) == 4 and argv[1] == "keys":
        make_keys(argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] == "jwt":
        make_jwt(argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] == "hash":
        with open(argv[2]) as f:
            print(key_hash(f.read().strip(), argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
