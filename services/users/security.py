"""Password hashing (argon2id, off the event loop) and token signing (RS256, published as JWKS)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.users.config import Settings
from shared.events import utcnow


class PasswordHashing:
    def __init__(self, memory_kib: int, time_cost: int) -> None:
        self._hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=1)
        # A hash to verify against when the account does not exist, so timing does not tell.
        self._dummy = self._hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


def load_or_create_private_key(settings: Settings) -> rsa.RSAPrivateKey:
    if settings.jwt_private_key:
        pem = settings.jwt_private_key.encode()
    elif settings.jwt_private_key_file:
        pem = settings.jwt_private_key_file.read_bytes()
    else:
        path = settings.data_dir / "jwt_private_key.pem"
        if not path.exists():
            _write_new_key(path)
        pem = path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("JWT_PRIVATE_KEY must be an RSA private key")
    return key


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    # A concurrent starter may have written one first; keep whichever landed first.
    if not path.exists():
        tmp.replace(path)
    else:
        tmp.unlink(missing_ok=True)


class TokenIssuer:
    def __init__(self, private_key: rsa.RSAPrivateKey, settings: Settings) -> None:
        self._key = private_key
        self._settings = settings
        public = private_key.public_key()
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        self.kid = _thumbprint(jwk)
        self.jwks: dict[str, Any] = {"keys": [jwk | {"kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def _sign(self, user_id: int, username: str, token_type: str, lifetime: int) -> str:
        now = utcnow()
        claims = {
            "sub": str(user_id),
            "username": username,
            "typ": token_type,
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=lifetime),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def access(self, user_id: int, username: str) -> str:
        return self._sign(user_id, username, "access", self._settings.access_token_seconds)

    def refresh(self, user_id: int, username: str) -> str:
        return self._sign(user_id, username, "refresh", self._settings.refresh_token_seconds)


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA JWK: a stable key id for the key set."""
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
