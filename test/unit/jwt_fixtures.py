#!/usr/bin/env python3
"""Keys, a JWK Set and signed tokens for test_jwt.c, made with the openssl command line.

  jwt_fixtures.py DIR

All the cryptography (key generation, RSA and ECDSA signatures, the HMAC of the key-confusion
token) is openssl's; this script only encodes what openssl prints (base64url, JSON, an ECDSA
signature from DER to the r || s form JOSE uses), so the C code under test is checked against
an implementation that is not ours. Writes into DIR:

  jwks.json          rsa1 (RS256), ec1 (ES256) and keys that must be skipped: an encryption
                     key, a 1024-bit RSA key, a P-384 key, an RSA key restricted to PS256, an
                     Ed25519 (OKP) key
  NAME.jwt           one token per line of TOKENS below
  claims.json        the claims every token carries
  rsa1.pem ...       the private keys (test only)
"""
import base64
import json
import os
import re
import subprocess
import sys

OUT = sys.argv[1]


def ossl(*args, data=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=data,
                          cwd=OUT).stdout


def b64u(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def genkey(name, *opts):
    ossl("genpkey", *opts, "-out", f"{name}.pem")


def rsa_jwk(name, **extra):
    modulus = ossl("rsa", "-in", f"{name}.pem", "-noout", "-modulus").decode()
    n = bytes.fromhex(modulus.strip().split("=", 1)[1])
    text = ossl("rsa", "-in", f"{name}.pem", "-noout", "-text").decode()
    e = int(re.search(r"publicExponent: (\d+)", text).group(1))
    return {"kty": "RSA", "n": b64u(n), "e": b64u(e.to_bytes((e.bit_length() + 7) // 8, "big")),
            **extra}


def ec_jwk(name, crv, size, **extra):
    spki = ossl("pkey", "-in", f"{name}.pem", "-pubout", "-outform", "DER")
    point = spki[-(1 + 2 * size):]
    assert point[0] == 4, "an uncompressed point ends the SubjectPublicKeyInfo"
    return {"kty": "EC", "crv": crv, "x": b64u(point[1:1 + size]), "y": b64u(point[1 + size:]),
            **extra}


def der_to_jose(der):
    """An ECDSA-Sig-Value (DER SEQUENCE of r, s) as r || s, 32 bytes each."""
    ints = re.findall(r"INTEGER\s*:([0-9A-F]+)", ossl("asn1parse", "-inform", "DER", data=der).decode())
    assert len(ints) == 2, ints
    return b"".join(bytes.fromhex(v.rjust(64, "0"))[-32:] for v in ints)


def sign(alg, key, signing_input):
    if alg == "RS256":
        return ossl("dgst", "-sha256", "-sign", f"{key}.pem", data=signing_input)
    if alg == "ES256":
        return der_to_jose(ossl("dgst", "-sha256", "-sign", f"{key}.pem", data=signing_input))
    if alg == "ES256-DER":  # the mistake of sending openssl's DER form as is
        return ossl("dgst", "-sha256", "-sign", f"{key}.pem", data=signing_input)
    if alg == "HS256-PUBKEY":  # key confusion: the RSA public key used as an HMAC secret
        pub = ossl("pkey", "-in", f"{key}.pem", "-pubout")
        return ossl("dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{pub.hex()}",
                    "-binary", data=signing_input)
    if alg == "none":
        return b""
    raise ValueError(alg)


CLAIMS = {"iss": "https://op.example", "sub": "user-42", "aud": "edgegate", "exp": 2000000000,
          "iat": 1700000000, "nonce": "n-0S6_WzA2Mj", "email": "ada@example.org",
          "name": "Ada Lovelace"}

# name: (header, how it is signed, with which key)
TOKENS = {
    "rs256": ({"alg": "RS256", "kid": "rsa1", "typ": "JWT"}, "RS256", "rsa1"),
    "es256": ({"alg": "ES256", "kid": "ec1"}, "ES256", "ec1"),
    "rs256_nokid": ({"alg": "RS256"}, "RS256", "rsa1"),
    "rs256_other_key": ({"alg": "RS256", "kid": "rsa1"}, "RS256", "rsa2"),
    "rs256_unknown_kid": ({"alg": "RS256", "kid": "rsa2"}, "RS256", "rsa2"),
    "es256_der": ({"alg": "ES256", "kid": "ec1"}, "ES256-DER", "ec1"),
    "es256_as_rs256": ({"alg": "RS256", "kid": "ec1"}, "ES256", "ec1"),
    "hs256_pubkey": ({"alg": "HS256", "kid": "rsa1"}, "HS256-PUBKEY", "rsa1"),
    "none": ({"alg": "none"}, "none", None),
    "weak_rsa": ({"alg": "RS256", "kid": "weak"}, "RS256", "weak"),
    "crit": ({"alg": "RS256", "kid": "rsa1", "crit": ["exp"], "exp": 1}, "RS256", "rsa1"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ("rsa1", "rsa2", "weak", "rsa_ps", "rsa_enc"):
        genkey(name, "-algorithm", "RSA", "-pkeyopt",
               f"rsa_keygen_bits:{1024 if name == 'weak' else 2048}")
    genkey("ec1", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    genkey("p384", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
    genkey("ed", "-algorithm", "ED25519")
    ed_pub = ossl("pkey", "-in", "ed.pem", "-pubout", "-outform", "DER")[-32:]
    jwks = {"keys": [
        rsa_jwk("rsa_enc", kid="enc", use="enc"),
        rsa_jwk("rsa1", kid="rsa1", use="sig", alg="RS256"),
        ec_jwk("ec1", "P-256", 32, kid="ec1", use="sig", alg="ES256"),
        rsa_jwk("weak", kid="weak"),
        ec_jwk("p384", "P-384", 48, kid="p384"),
        rsa_jwk("rsa_ps", kid="ps", alg="PS256"),
        {"kty": "OKP", "crv": "Ed25519", "x": b64u(ed_pub), "kid": "ed"},
    ]}
    with open(os.path.join(OUT, "jwks.json"), "w") as f:
        json.dump(jwks, f)
    with open(os.path.join(OUT, "claims.json"), "w") as f:
        json.dump(CLAIMS, f)
    payload = b64u(json.dumps(CLAIMS).encode())
    for name, (header, how, key) in TOKENS.items():
        signing_input = (b64u(json.dumps(header).encode()) + "." + payload).encode()
        token = signing_input.decode() + "." + b64u(sign(how, key, signing_input))
        with open(os.path.join(OUT, f"{name}.jwt"), "w") as f:
            f.write(token)


if __name__ == "__main__":
    main()
