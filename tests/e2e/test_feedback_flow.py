"""Feedback after a sale, through the gateway only, in both run modes."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import Stack
from tests.e2e.test_api_flow import create_listing, new_user


def wait_for_won(http: httpx.Client, user_id: int, count: int, within: float = 20) -> None:
    """The users service learns about the sale from auction.closed, a moment after the close."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if http.get(f"/api/users/{user_id}").json()["stats"]["won"] >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"user {user_id} never showed {count} won auctions")


def test_both_parties_leave_feedback_once_and_the_profile_shows_it(any_stack: Stack) -> None:
    with httpx.Client(base_url=any_stack.base_url, timeout=20) as http:
        seller, seller_user, _ = new_user(http)
        winner, winner_user, _ = new_user(http)
        stranger, _, _ = new_user(http)
        listing = create_listing(http, seller)
        url = f"/api/listings/{listing['id']}/feedback"

        # While the auction runs there is no sale to rate.
        early = http.post(url, headers=winner, json={"rating": 1})
        assert early.status_code == 409 and early.json()["code"] == "not_sold", early.text
        assert early.headers["content-type"].startswith("application/problem+json")

        bid = http.post(f"/api/listings/{listing['id']}/bids", headers=winner, json={"amount": "7.00"})
        assert bid.status_code == 201, bid.text
        close = http.post(f"/api/listings/{listing['id']}/close", headers=seller)
        assert close.status_code == 200, close.text
        wait_for_won(http, winner_user["id"], 1)

        assert http.post(url, json={"rating": 1}).status_code == 401
        bad = http.post(url, headers=winner, json={"rating": 5})
        assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
        third = http.post(url, headers=stranger, json={"rating": -1})
        assert third.status_code == 403 and third.json()["code"] == "not_a_party", third.text

        from_winner = http.post(url, headers=winner, json={"rating": 1, "comment": "As described, quick to ship"})
        assert from_winner.status_code == 201, from_winner.text
        body = from_winner.json()
        assert body["from_user"] == {"id": winner_user["id"], "username": winner_user["username"]}
        assert body["to_user"] == {"id": seller_user["id"], "username": seller_user["username"]}
        twice = http.post(url, headers=winner, json={"rating": 0})
        assert twice.status_code == 409 and twice.json()["code"] == "feedback_exists", twice.text

        from_seller = http.post(url, headers=seller, json={"rating": -1, "comment": "Paid late"})
        assert from_seller.status_code == 201, from_seller.text
        assert from_seller.json()["to_user"]["id"] == winner_user["id"]

        seller_profile = http.get(f"/api/users/{seller_user['id']}").json()["feedback"]
        assert seller_profile["score"] == 1 and seller_profile["positive"] == 1
        assert seller_profile["recent"][0]["comment"] == "As described, quick to ship"
        assert seller_profile["recent"][0]["listing_id"] == listing["id"]
        mine = http.get("/api/users/me", headers=winner).json()["feedback"]
        assert (mine["score"], mine["negative"]) == (-1, 1)
        listed = http.get(f"/api/users/{winner_user['id']}/feedback").json()
        assert [f["comment"] for f in listed["items"]] == ["Paid late"] and listed["next_cursor"] is None

        spec = http.get("/api/openapi.json").json()
        assert "post" in spec["paths"]["/api/listings/{listing_id}/feedback"]
        assert "get" in spec["paths"]["/api/users/{user_id}/feedback"]
