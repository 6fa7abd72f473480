"""Hostile access tokens against a running stack: each one must be refused everywhere.

Tokens that differ from a real one in a single claim (expired, another audience, another issuer) are signed
with the stack's own key (read from its ``DATA_DIR``), so only that claim can be the reason they are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.tokens import AUDIENCE, ISSUER


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


class Forger:
    """Makes tokens for ``user_id`` with the stack's key (``key_path``) and its published ``kid``."""

    def __init__(self, key_path: Path, jwks: dict[str, Any]) -> None:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.key = key
        self.kid: str = jwks["keys"][0]["kid"]
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, user_id: int, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "sub": str(user_id),
            "username": f"user{user_id}",
            "typ": "access",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 600,
        }
        return {k: v for k, v in (base | overrides).items() if v is not None}

    def signed(self, user_id: int, algorithm: str = "RS256", **overrides: Any) -> str:
        """Signed by the stack's real key: valid unless ``overrides`` break a claim."""
        return jwt.encode(self.claims(user_id, **overrides), self.key, algorithm=algorithm, headers={"kid": self.kid})

    def hostile(self, user_id: int, refresh_token: str) -> dict[str, str]:
        """Every kind of token that must be refused, by name."""
        now = int(time.time())
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        claims = self.claims(user_id)
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        signing_input = _unsigned(header, claims)
        # The classic confusion: HMAC keyed with the public key, hoping the verifier uses it as a secret.
        hs256 = hmac.new(self.public_pem, signing_input.encode(), hashlib.sha256).digest()
        valid = self.signed(user_id)
        head, body, signature = valid.split(".")
        someone_else = _b64(json.dumps(claims | {"sub": str(user_id + 1)}).encode())
        return {
            "signed_by_another_key": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": self.kid}),
            "another_key_and_kid": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "attacker"}),
            "expired": self.signed(user_id, iat=now - 7200, exp=now - 3600),
            "wrong_audience": self.signed(user_id, aud="someone-else"),
            "wrong_issuer": self.signed(user_id, iss="https://evil.example"),
            "no_expiry": self.signed(user_id, exp=None),
            "not_yet_valid": self.signed(user_id, nbf=now + 3600),
            "subject_not_an_id": self.signed(user_id, sub="admin"),
            "rs512_instead_of_rs256": self.signed(user_id, algorithm="RS512"),
            "alg_none": _unsigned({"alg": "none", "typ": "JWT", "kid": self.kid}, claims) + ".",
            "alg_none_upper": _unsigned({"alg": "None", "typ": "JWT", "kid": self.kid}, claims) + ".",
            "hs256_with_public_key": f"{signing_input}.{_b64(hs256)}",
            "claims_swapped_under_signature": f"{head}.{someone_else}.{signature}",
            "signature_stripped": f"{head}.{body}.",
            "malformed_three_dots": "not.a.jwt",
            "malformed_one_part": "garbage",
            "malformed_bad_base64": "eyJ!!!.eyJ###.sig",
            "refresh_token_as_access": refresh_token,
            "typ_missing": self.signed(user_id, typ=None),
        }
