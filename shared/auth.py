"""Verification of the users service's access tokens, everywhere.

Tokens are RS256 JWTs. A verifier takes the public keys from the published JWKS (fetched once,
refetched at most every few seconds when an unknown ``kid`` shows up), checks the signature with an
explicit algorithm list, and requires ``exp``, ``iat``, ``sub``, ``iss`` and ``aud``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from jwt import PyJWK

from shared.errors import ProblemError

ALGORITHMS = ["RS256"]
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]

JwksSource = Callable[[], Awaitable[dict[str, Any]]]


def http_jwks_source(url: str, client: httpx.AsyncClient | None = None) -> JwksSource:
    async def fetch() -> dict[str, Any]:
        if client is not None:
            response = await client.get(url)
        else:
            async with httpx.AsyncClient(timeout=5) as own:
                response = await own.get(url)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    return fetch


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    id: int
    username: str


class InvalidTokenError(Exception):
    pass


class TokenVerifier:
    def __init__(self, source: JwksSource, *, issuer: str, audience: str, refetch_interval: float = 5.0) -> None:
        self.source = source
        self.issuer = issuer
        self.audience = audience
        self.refetch_interval = refetch_interval
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.refetch_interval and self._keys:
                return
            jwks = await self.source()
            keys = {}
            for entry in jwks.get("keys", []):
                if entry.get("alg", "RS256") in ALGORITHMS and "kid" in entry:
                    keys[entry["kid"]] = PyJWK(entry, algorithm=entry.get("alg", "RS256"))
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> PyJWK:
        if kid not in self._keys:
            try:
                await self._refresh()
            except Exception as exc:
                raise InvalidTokenError("signing keys unavailable") from exc
        key = self._keys.get(kid)
        if key is None:
            raise InvalidTokenError("unknown signing key")
        return key

    async def verify(self, token: str, *, token_type: str = "access") -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidTokenError("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidTokenError("token has no key id")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        if claims.get("typ") != token_type:
            raise InvalidTokenError("wrong token type")
        return claims

    async def principal(self, token: str) -> Principal:
        claims = await self.verify(token)
        try:
            return Principal(id=int(claims["sub"]), username=str(claims.get("username", "")))
        except (TypeError, ValueError) as exc:
            raise InvalidTokenError("bad subject") from exc


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(401, "invalid_token", "expected 'Authorization: Bearer <token>'")
    return token.strip()


async def optional_principal(request: Request) -> Principal | None:
    token = _bearer(request)
    if token is None:
        return None
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.principal(token)
    except InvalidTokenError as exc:
        raise ProblemError(401, "invalid_token", str(exc)) from exc


async def require_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise ProblemError(401, "unauthorized", "authentication required")
    return principal


#: Route parameter types: ``user: CurrentUser`` requires a valid token, ``user: MaybeUser`` accepts none.
CurrentUser = Annotated[Principal, Depends(require_principal)]
MaybeUser = Annotated[Principal | None, Depends(optional_principal)]
