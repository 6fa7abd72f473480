"""The users service through its HTTP API, in both run modes."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from PIL import Image

from services.users.app import create_app
from services.users.config import Settings
from tests.conftest import serve
from tests.support import images


@pytest.fixture
async def client(mode: str, make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(Settings, real=mode == "postgres", LOGIN_MAX_FAILURES_PER_ACCOUNT=3)
    async with serve(create_app(settings)) as c:
        yield c


async def register(client: httpx.AsyncClient, name: str = "alice", password: str = "correct-horse") -> dict[str, Any]:
    r = await client.post(
        "/api/auth/register", json={"username": name, "email": f"{name}@example.org", "password": password}
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def login(client: httpx.AsyncClient, name: str = "alice", password: str = "correct-horse") -> dict[str, Any]:
    r = await client.post("/api/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "code"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in r.text
    if code:
        assert body["code"] == code
    return body  # type: ignore[no-any-return]


async def test_register_login_me_and_profile(client: httpx.AsyncClient) -> None:
    user = await register(client)
    assert user["username"] == "alice" and user["email"] == "alice@example.org"
    assert user["avatar_url"].startswith("/media/avatars/")
    assert user["stats"] == {"listings": 0, "won": 0, "bids": 0}
    tokens = await login(client)
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0 and tokens["user"]["id"] == user["id"]
    me = await client.get("/api/users/me", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["id"] == user["id"]
    assert "X-Server-Time" in me.headers
    public = (await client.get(f"/api/users/{user['id']}")).json()
    assert public["username"] == "alice" and "email" not in public


async def test_duplicate_names_and_addresses_are_refused(client: httpx.AsyncClient) -> None:
    await register(client)
    r = await client.post(
        "/api/auth/register", json={"username": "ALICE", "email": "x@example.org", "password": "12345678"}
    )
    assert_problem(r, 409, "username_taken")
    r = await client.post(
        "/api/auth/register", json={"username": "bob", "email": "Alice@Example.org", "password": "12345678"}
    )
    assert_problem(r, 409, "email_taken")


async def test_concurrent_registration_of_one_name_creates_one_account(client: httpx.AsyncClient) -> None:
    results = await asyncio.gather(
        *(
            client.post(
                "/api/auth/register", json={"username": "racer", "email": f"r{i}@example.org", "password": "12345678"}
            )
            for i in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]
    found = (await client.get("/api/users", params={"q": "racer"})).json()["items"]
    assert len(found) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "email": "a@example.org", "password": "12345678"},
        {"username": "a" * 33, "email": "a@example.org", "password": "12345678"},
        {"username": "bad name", "email": "a@example.org", "password": "12345678"},
        {"username": "good", "email": "not-an-email", "password": "12345678"},
        {"username": "good", "email": "a@example.org", "password": "short"},
        {"username": "good", "email": "a@example.org", "password": "x" * 300},
        {"username": 12345, "email": "a@example.org", "password": "12345678"},
        {"username": "good", "email": "a@example.org"},
        {"username": ["good"], "email": "a@example.org", "password": "12345678"},
    ],
)
async def test_bad_registrations_are_422_and_store_nothing(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    body_out = assert_problem(await client.post("/api/auth/register", json=body), 422)
    assert body_out["errors"], body_out
    assert (await client.get("/api/users")).json()["items"] == []


async def test_bad_json_is_a_problem(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/register", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(r, 422, "invalid_json")
    r = await client.post("/api/auth/login", content=b"[1,2]", headers={"content-type": "application/json"})
    assert_problem(r, 422)


async def test_wrong_password_is_401_then_throttled(client: httpx.AsyncClient) -> None:
    await register(client)
    for _ in range(3):
        assert_problem(
            await client.post("/api/auth/login", json={"username": "alice", "password": "wrong-pass"}),
            401,
            "invalid_credentials",
        )
    r = await client.post("/api/auth/login", json={"username": "alice", "password": "correct-horse"})
    assert_problem(r, 429, "too_many_attempts")
    assert int(r.headers["Retry-After"]) > 0
    # Another account is not affected by alice's failures.
    await register(client, "bob")
    await login(client, "bob")


async def test_unknown_user_login_is_the_same_401(client: httpx.AsyncClient) -> None:
    assert_problem(
        await client.post("/api/auth/login", json={"username": "nobody", "password": "whatever1"}),
        401,
        "invalid_credentials",
    )


async def test_refresh_gives_a_new_pair_and_refuses_access_tokens(client: httpx.AsyncClient) -> None:
    await register(client)
    tokens = await login(client)
    r = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    assert (await client.get("/api/users/me", headers=bearer(r.json()))).status_code == 200
    assert_problem(
        await client.post("/api/auth/refresh", json={"refresh_token": tokens["access_token"]}), 401, "invalid_token"
    )
    assert_problem(await client.post("/api/auth/refresh", json={"refresh_token": "garbage"}), 401, "invalid_token")
    # A refresh token is not an access token either.
    assert_problem(
        await client.get("/api/users/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}), 401
    )


async def test_forged_expired_and_unsigned_tokens_are_refused(client: httpx.AsyncClient) -> None:
    await register(client)
    tokens = await login(client)
    good = tokens["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    header = jwt.get_unverified_header(good)
    jwks = (await client.get("/api/auth/jwks.json")).json()
    assert jwks["keys"][0]["kty"] == "RSA" and "d" not in jwks["keys"][0]

    from cryptography.hazmat.primitives.asymmetric import rsa

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": header["kid"]})
    expired = jwt.encode(
        claims | {"exp": now - 60, "iat": now - 120}, other_key, algorithm="RS256", headers={"kid": header["kid"]}
    )
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]})
    tampered = good.rsplit(".", 2)
    tampered[1] = jwt.utils.base64url_encode(jwt.utils.force_bytes('{"sub":"1","typ":"access"}')).decode()
    public_pem = jwt.algorithms.RSAAlgorithm.from_jwk(jwks["keys"][0])
    from cryptography.hazmat.primitives import serialization

    pem = public_pem.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
    import hashlib
    import hmac
    import json as jsonlib

    def hs256_with_public_key() -> str:
        seg = [
            jwt.utils.base64url_encode(jsonlib.dumps({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}).encode()),
            jwt.utils.base64url_encode(jsonlib.dumps(claims).encode()),
        ]
        signing_input = b".".join(seg)
        sig = jwt.utils.base64url_encode(hmac.new(pem, signing_input, hashlib.sha256).digest())
        return (signing_input + b"." + sig).decode()

    for bad in (forged, expired, unsigned, ".".join(tampered), hs256_with_public_key(), "not.a.jwt"):
        assert_problem(await client.get("/api/users/me", headers={"Authorization": f"Bearer {bad}"}), 401)
    assert_problem(await client.get("/api/users/me"), 401)
    assert_problem(await client.get("/api/users/me", headers={"Authorization": "Basic abc"}), 401)


async def test_search_paginates_with_a_cursor(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await register(client, f"seeker{i}")
    first = (await client.get("/api/users", params={"q": "seek", "limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (await client.get("/api/users", params={"q": "seek", "limit": 2, "cursor": first["next_cursor"]})).json()
    assert {u["id"] for u in first["items"]}.isdisjoint({u["id"] for u in second["items"]})
    assert_problem(await client.get("/api/users", params={"cursor": "%%%tampered"}), 422, "invalid_cursor")
    assert_problem(await client.get("/api/users", params={"limit": 0}), 422)
    assert_problem(await client.get("/api/users/notanumber"), 422)
    assert_problem(await client.get("/api/users/999999"), 404, "not_found")


async def test_avatar_is_reencoded_and_served(client: httpx.AsyncClient) -> None:
    await register(client)
    tokens = await login(client)
    r = await client.put(
        "/api/users/me/avatar",
        headers=bearer(tokens),
        files={"file": ("me.jpg", images.jpeg_with_exif(), "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    url = r.json()["avatar_url"]
    served = await client.get(url)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(served.content)) as img:
        assert img.format == "JPEG"
        assert not img.getexif(), "metadata must be stripped"
    assert b"SecretCam" not in served.content
    me = (await client.get("/api/users/me", headers=bearer(tokens))).json()
    assert me["avatar_url"] == url


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("renamed.png", b"%PDF-1.4 this is not an image", 415, "not_an_image"),
        ("bomb.png", None, 415, "not_an_image"),
        ("cut.png", None, 415, "not_an_image"),
        ("empty.png", b"", 415, "not_an_image"),
        ("huge.png", b"\x89PNG" + b"0" * (6 * 1024 * 1024), 413, "file_too_large"),
    ],
)
async def test_bad_avatars_are_refused_and_change_nothing(
    client: httpx.AsyncClient, name: str, content: bytes | None, status: int, code: str
) -> None:
    await register(client)
    tokens = await login(client)
    ok = await client.put(
        "/api/users/me/avatar", headers=bearer(tokens), files={"file": ("a.png", images.png(), "image/png")}
    )
    before = ok.json()["avatar_url"]
    if content is None:
        content = images.decompression_bomb() if name == "bomb.png" else images.truncated_png()
    r = await client.put("/api/users/me/avatar", headers=bearer(tokens), files={"file": (name, content, "image/png")})
    assert_problem(r, status, code)
    assert (await client.get("/api/users/me", headers=bearer(tokens))).json()["avatar_url"] == before
    assert (await client.get(before)).status_code == 200


async def test_avatar_needs_a_file_and_a_token(client: httpx.AsyncClient) -> None:
    await register(client)
    tokens = await login(client)
    assert_problem(await client.put("/api/users/me/avatar", files={"file": ("a.png", images.png(), "image/png")}), 401)
    assert_problem(await client.put("/api/users/me/avatar", headers=bearer(tokens)), 422)
    assert_problem(await client.get("/media/avatars/../../etc/passwd"), 404)


async def test_health_ready_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True}
    assert "http_requests_total" in (await client.get("/metrics")).text
