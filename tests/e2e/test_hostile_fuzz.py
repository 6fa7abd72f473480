"""Property-based fuzzing of every public endpoint from the gateway's OpenAPI document (schemathesis).

Every operation is called with generated input (valid and invalid), authenticated as a real user, and
sometimes aimed at resources that exist (a listing of the caller, one of another user, their chat), so the
rules run beyond 401 and 404. Whatever is sent: no 5xx, every 4xx is an RFC 9457 problem with
``type/title/status/detail/code``, and no body carries a stack trace.

The stack is this module's own: fuzzing ``/api/auth/login`` records failed logins for 127.0.0.1, which
would throttle the logins of the other end-to-end tests on the shared stack.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Err, Ok

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.support.hostile import PROBLEM_MEMBERS, STACK_TRACE_MARKERS, assert_problem, create_listing, new_user

#: Generated cases per operation: about 35 operations x this stays well under a minute on two cores.
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("fuzz"), "embedded")
    yield s
    stop_stack(s)


@pytest.fixture(scope="module")
def world(fuzz_stack: Stack) -> dict[str, Any]:
    """A caller with a listing and a chat, and another user with a listing: ids the fuzzer may aim at."""
    with httpx.Client(base_url=fuzz_stack.base_url, timeout=20) as http:
        auth, me, _ = new_user(http)
        other_auth, other, _ = new_user(http)
        own = create_listing(http, auth)
        theirs = create_listing(http, other_auth)
        chat = http.post("/api/chats", headers=auth, json={"user_id": other["id"]}).json()
        return {
            "headers": auth,
            "ids": {
                "listing_id": [own["id"], theirs["id"]],
                "chat_id": [chat["id"]],
                "user_id": [me["id"], other["id"]],
            },
        }


def assert_well_behaved(response: Any, call: str) -> None:
    status = response.status_code
    text = response.text
    assert status < 500, f"{call} -> {status}: {text[:500]}"
    for marker in STACK_TRACE_MARKERS:
        assert marker not in text, f"{call} leaked a stack trace: {text[:500]}"
    if status >= 400:
        # schemathesis' response keeps every value of a header: a list.
        content_type = ",".join(response.headers.get("content-type", []))
        assert content_type.startswith("application/problem+json"), f"{call} -> {status} as {content_type}: {text}"
        body = json.loads(text)
        missing = PROBLEM_MEMBERS - set(body)
        assert not missing, f"{call} -> {status}: problem without {missing}: {text}"
        assert body["status"] == status, f"{call}: status member {body['status']} != {status}"
        assert isinstance(body["code"], str) and body["code"], f"{call}: empty code"


def fuzz_operation(operation: Any, base_url: str, world: dict[str, Any], statuses: Counter[int]) -> None:
    """Hypothesis over one operation: schema-valid and schema-invalid cases, with and without the token."""
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    # Phases: no shrinking, so a failure costs no extra time and is reported as generated.
    @given(case=cases, data=st.data())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any, data: Any) -> None:
        # Half the time an id parameter names something that exists, so the rules behind the 404 run too.
        for name, known in world["ids"].items():
            if name in (case.path_parameters or {}) and data.draw(st.booleans(), label=f"real {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(known), label=name)
        authenticated = case.path.endswith("/me") or data.draw(st.booleans(), label="authenticated")
        response = case.call(base_url=base_url, headers=world["headers"] if authenticated else None, timeout=20)
        statuses[response.status_code] += 1
        assert_well_behaved(response, case.as_curl_command(headers=None))

    run()


def test_fuzz_every_operation(fuzz_stack: Stack, world: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_stack.base_url}/api/openapi.json")
    results = list(schema.get_all_operations())
    broken = [result.err() for result in results if isinstance(result, Err)]
    assert not broken, f"operations schemathesis cannot read: {broken}"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 30, [op.label for op in operations]
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    for operation in operations:
        try:
            fuzz_operation(operation, fuzz_stack.base_url, world, statuses)
        except Exception as exc:  # a failed check, or the call itself failing (timeout, reset)
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    seen = sorted(statuses.items())
    print(f"fuzzed {len(operations)} operations x {EXAMPLES_PER_OPERATION} cases in {elapsed:.1f} s: {seen}")
    # The fuzzer got past authentication and validation into the rules, not only 401 and 422.
    assert statuses[401] and statuses[422] and sum(n for code, n in statuses.items() if code < 300) > 50, statuses
    assert statuses[403] and statuses[409], statuses
    assert not failures, "\n\n".join(failures)


def test_fuzz_took_bounded_time_and_stack_survived(fuzz_stack: Stack, world: dict[str, Any]) -> None:
    """After the fuzzing the stack still answers and the caller can still use it."""
    started = time.monotonic()
    with httpx.Client(base_url=fuzz_stack.base_url, timeout=20) as http:
        assert http.get("/readyz").status_code == 200
        assert http.get("/api/users/me", headers=world["headers"]).status_code == 200
    assert time.monotonic() - started < 10
    assert fuzz_stack.process.poll() is None, Path(fuzz_stack.log_path).read_text()[-3000:]


TRAVERSALS = [
    "/media/avatars/%2e%2e%2fjwt_private_key.pem",
    "/media/avatars/..%2F..%2Fjwt_private_key.pem",
    "/media/avatars/%2E%2E/%2E%2E/jwt_private_key.pem",
    "/media/avatars/a%5c..%5c..%5cjwt_private_key.pem",
    "/media/avatars/x%00.jpg",
    "/media/avatars/.jwt_private_key.pem",
    "/media/listings/%2e%2e%2f%2e%2e%2fusers.db",
    "/assets/..%2f..%2fapp.py",
    "/assets/%2e%2e/%2e%2e/app.py",
    "/api/%2e%2e/media/avatars/x.jpg",
    "/api/listings/1%2F..%2F..%2Fchats",
    "/api/users/%0d%0aSet-Cookie:%20x=1",
]


def test_paths_outside_the_spec_never_escape_their_folder(fuzz_stack: Stack) -> None:
    """Encoded dot segments, separators and control characters in the media, asset and API paths."""
    key = (fuzz_stack.log_path.parent / "data" / "jwt_private_key.pem").read_bytes()
    with httpx.Client(base_url=fuzz_stack.base_url, timeout=20) as http:
        for path in TRAVERSALS:
            r = http.get(path)
            assert r.status_code in (404, 422), (path, r.status_code, r.text[:200])
            assert r.headers["content-type"].startswith("application/problem+json"), (path, r.headers)
            assert b"PRIVATE KEY" not in r.content and key not in r.content, path
            assert "set-cookie" not in r.headers, path


def test_text_the_database_cannot_store_is_bad_input(any_stack: Stack) -> None:
    """NUL characters (PostgreSQL text refuses them) in every kind of text input: 422 problems in both modes,
    never a database error; a hand-picked complement to the fuzzing, which runs on the embedded stack only."""
    with httpx.Client(base_url=any_stack.base_url, timeout=30) as http:
        auth, _, _ = new_user(http)
        other_auth, other, _ = new_user(http)
        listing = create_listing(http, auth)
        chat = http.post("/api/chats", headers=auth, json={"user_id": other["id"]}).json()
        new_listing = {"title": "ok", "category_id": 1, "start_price": "5", "duration_seconds": 600}
        probes: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
            ("POST", "/api/listings", new_listing | {"title": "a\x00b"}, auth),
            ("POST", "/api/listings", new_listing | {"description": "a\x00b"}, auth),
            ("PATCH", f"/api/listings/{listing['id']}", {"title": "a\x00b"}, auth),
            ("PATCH", f"/api/listings/{listing['id']}", {"description": "a\x00b"}, auth),
            ("POST", f"/api/listings/{listing['id']}/comments", {"text": "a\x00b"}, other_auth),
            ("POST", f"/api/chats/{chat['id']}/messages", {"text": "a\x00b"}, auth),
            ("GET", "/api/users?q=a%00b", None, auth),
            ("GET", "/api/listings?q=a%00b", None, auth),
            ("POST", "/api/auth/login", {"username": "a\x00b", "password": "whatever-pass"}, {}),
            (
                "POST",
                "/api/auth/register",
                {"username": "nulcheck", "email": "a\x00b@example.org", "password": "p" * 9},
                {},
            ),
        ]
        for method, path, body, headers in probes:
            r = http.request(method, path, json=body, headers=headers)
            assert_problem(r, 422)
        assert http.get(f"/api/listings/{listing['id']}").json()["title"] == "hostile item"
