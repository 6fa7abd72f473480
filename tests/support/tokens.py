"""A signing key for tests of services other than users: tokens they verify like real ones."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "auction-users"
AUDIENCE = "auction"


class TestKeys:
    __test__ = False

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
        self.jwks = {"keys": [jwk | {"kid": self.kid, "alg": "RS256", "use": "sig"}]}

    async def source(self) -> dict[str, Any]:
        """Pass as ``create_app(..., jwks=keys.source)``."""
        return self.jwks

    def token(self, user_id: int, username: str = "", *, lifetime: int = 600, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "username": username or f"user{user_id}",
            "typ": "access",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + lifetime,
        } | overrides
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def auth(self, user_id: int, username: str = "") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, username)}"}
