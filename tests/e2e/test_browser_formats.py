"""The browser app's auction formats in real Chromium against the embedded stack: reserve and buy now
from the create page, the live reserve badge, feedback after a sale, the feedback on profiles, and the
private maximum (proxy bidding) as the contract describes it."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.test_browser import (
    Watch,
    api_listing,
    api_user,
    every_control_is_labelled,
    log_in,
    new_context,
    shot,
    unique,
)

pytestmark = pytest.mark.e2e


def as_user(base_url: str, user: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {user['access_token']}"})


def page_of(browser: Browser, contexts: list[BrowserContext], watch: Watch) -> Page:
    return watch.attach(new_context(browser, contexts).new_page())


def create_through_the_form(page: Page, title: str, reserve: str, buy_now: str) -> int:
    page.get_by_role("link", name="Create listing").first.click()
    expect(page.get_by_role("heading", name="Create listing", exact=True)).to_be_visible()
    page.get_by_label("Title").fill(title)
    page.get_by_label("Category").select_option(label="Electronics")
    page.get_by_label("Start price ($)").fill("10")
    page.get_by_label("Reserve price ($, optional)").fill(reserve)
    page.get_by_label("Buy-now price ($, optional)").fill(buy_now)
    every_control_is_labelled(page)
    page.get_by_role("button", name="Create listing").click()
    expect(page).to_have_url(re.compile(r"/listings/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_reserve_and_buy_now_from_the_create_page_and_the_buyer_buys_it(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    seller_name, buyer_name = unique("rhea"), unique("boris")
    api_user(base_url, seller_name)
    api_user(base_url, buyer_name)
    seller = page_of(browser, contexts, watch)
    log_in(seller, base_url, seller_name)

    # A reserve above the buy-now price is refused by the server, next to the field.
    title = unique("Lamp ")
    seller.get_by_role("link", name="Create listing").first.click()
    seller.get_by_label("Title").fill(title)
    seller.get_by_label("Category").select_option(label="Electronics")
    seller.get_by_label("Start price ($)").fill("10")
    seller.get_by_label("Reserve price ($, optional)").fill("50")
    seller.get_by_label("Buy-now price ($, optional)").fill("40")
    seller.get_by_role("button", name="Create listing").click()
    expect(seller.locator('[data-error-for="buy_now_price"]')).not_to_be_empty()

    seller.get_by_label("Buy-now price ($, optional)").fill("80")
    seller.get_by_role("button", name="Create listing").click()
    expect(seller).to_have_url(re.compile(r"/listings/\d+$"))
    listing_id = int(seller.url.rsplit("/", 1)[1])
    # The seller sees their reserve and the badge, but no buy button on their own listing.
    expect(seller.locator("#reserve")).to_have_text("Reserve not met")
    expect(seller.get_by_role("row", name=re.compile("Reserve price"))).to_contain_text("$50.00")
    expect(seller.locator("#buy-now")).to_have_count(0)

    buyer = page_of(browser, contexts, watch)
    log_in(buyer, base_url, buyer_name, f"/listings/{listing_id}")
    expect(buyer.locator("#reserve")).to_have_text("Reserve not met")
    expect(buyer.get_by_text("Reserve price")).to_have_count(0)  # hidden from everyone but the seller
    buy = buyer.get_by_role("button", name="Buy now for $80.00")
    expect(buy).to_be_visible()
    shot(buyer, "listing-buy-now", full_page=False)
    buy.click()
    buyer.get_by_role("button", name="Yes, buy it").click()

    expect(buyer.locator("#winner")).to_contain_text("You won")
    expect(buyer.locator("#winner")).to_contain_text("$80.00")
    expect(buyer.locator("#status")).to_have_text("Ended")
    expect(buyer.locator("#buy-now")).to_have_count(0)
    # The seller's page follows live.
    expect(seller.locator("#winner")).to_contain_text(f"Sold to @{buyer_name}")
    watch.check()


def test_a_bid_that_meets_the_reserve_flips_the_badge_and_ends_buy_now_live(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    seller_name, visitor_name = unique("sven"), unique("vera")
    seller = api_user(base_url, seller_name)
    api_user(base_url, visitor_name)
    rival = api_user(base_url, unique("rolf"))
    with as_user(base_url, seller) as client:
        category = client.get("/api/categories").json()["items"][0]["id"]
        created = client.post(
            "/api/listings",
            json={
                "title": "Reserve test",
                "category_id": category,
                "start_price": "10.00",
                "duration_seconds": 3600,
                "reserve_price": "30.00",
                "buy_now_price": "60.00",
            },
        )
        assert created.status_code == 201, created.text
        listing_id = created.json()["id"]

    visitor = page_of(browser, contexts, watch)
    log_in(visitor, base_url, visitor_name, f"/listings/{listing_id}")
    expect(visitor.locator("#reserve")).to_have_text("Reserve not met")
    expect(visitor.get_by_role("button", name="Buy now for $60.00")).to_be_visible()

    with as_user(base_url, rival) as client:
        low = client.post(f"/api/listings/{listing_id}/bids", json={"amount": "15.00"})
        assert low.status_code == 201, low.text
    expect(visitor.locator("#current-price")).to_have_text("$15.00")
    expect(visitor.locator("#reserve")).to_have_text("Reserve not met")
    expect(visitor.get_by_role("button", name="Buy now for $60.00")).to_be_visible()  # the reserve is not met yet

    with as_user(base_url, rival) as client:
        high = client.post(f"/api/listings/{listing_id}/bids", json={"amount": "30.00"})
        assert high.status_code == 201, high.text
    expect(visitor.locator("#reserve")).to_have_text("Reserve met")
    expect(visitor.locator("#reserve")).to_have_class(re.compile("badge-success"))
    expect(visitor.locator("#buy-now")).to_have_count(0)
    watch.check()


def test_feedback_form_after_a_sale_and_the_score_on_the_profile(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    seller_name, winner_name = unique("sam"), unique("wendy")
    seller = api_user(base_url, seller_name)
    winner = api_user(base_url, winner_name)
    stranger_name = unique("otto")
    api_user(base_url, stranger_name)
    listing = api_listing(base_url, seller["access_token"], "Feedback test", 3600)
    with as_user(base_url, winner) as client:
        client.post(f"/api/listings/{listing['id']}/bids", json={"amount": "6.00"}).raise_for_status()
    with as_user(base_url, seller) as client:
        client.post(f"/api/listings/{listing['id']}/close").raise_for_status()

    page = page_of(browser, contexts, watch)
    log_in(page, base_url, winner_name, f"/listings/{listing['id']}")
    expect(page.locator("#winner")).to_contain_text("You won")
    form = page.locator("#feedback-form")
    expect(form).to_be_visible()
    every_control_is_labelled(page)
    form.get_by_role("button", name="Leave feedback").click()
    expect(page.locator('[data-error-for="rating"]')).to_have_text("Choose a rating.")
    form.get_by_label("Positive").check()
    form.get_by_label("Comment (optional)").fill("Well packed, <b>fast</b>.")
    shot(page, "listing-feedback-form", full_page=False)
    form.get_by_role("button", name="Leave feedback").click()
    expect(page.locator("#feedback-left")).to_have_text("Feedback left. Thank you!")
    expect(form).to_be_hidden()
    # Coming back later, the page knows it is done.
    page.reload()
    expect(page.locator("#feedback-left")).to_be_visible()
    expect(page.locator("#feedback-form")).to_be_hidden()

    # The seller rates the winner from their own page.
    seller_page = page_of(browser, contexts, watch)
    log_in(seller_page, base_url, seller_name, f"/listings/{listing['id']}")
    expect(seller_page.locator("#feedback-title")).to_have_text("Feedback on the buyer")
    seller_page.locator("#feedback-form").get_by_label("Neutral").check()
    seller_page.locator("#feedback-form").get_by_role("button", name="Leave feedback").click()
    expect(seller_page.locator("#feedback-left")).to_be_visible()

    # A third party sees no form at all.
    other = page_of(browser, contexts, watch)
    log_in(other, base_url, stranger_name, f"/listings/{listing['id']}")
    expect(other.locator("#winner")).to_contain_text(f"Winner: @{winner_name}")
    expect(other.locator("#feedback")).to_be_hidden()

    # The seller's public profile shows the score and the comment (as text, not markup).
    page.goto(f"{base_url}/users/{seller['user']['id']}")
    expect(page.locator("#feedback-score")).to_have_text("Score +1")
    expect(page.locator("#feedback-positive")).to_have_text("1 positive")
    item = page.locator("#feedback-list .feedback-item").first
    expect(item).to_contain_text("Well packed, <b>fast</b>.")
    expect(item).to_contain_text(f"@{winner_name}")
    expect(item.get_by_role("link", name="Feedback test")).to_have_attribute("href", f"/listings/{listing['id']}")
    assert page.locator("#feedback-list b").count() == 0
    shot(page, "profile-feedback")
    # The winner's cabinet shows what the seller said.
    page.goto(f"{base_url}/me")
    expect(page.locator("#feedback-score")).to_have_text("Score 0")
    expect(page.locator("#feedback-neutral")).to_have_text("1 neutral")
    watch.check()


def test_max_bid_field_bids_for_you_and_tells_who_leads(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    """Proxy bidding through the listing page: the answer's `leading` and own `max_amount` are shown."""
    watch = Watch()
    seller = api_user(base_url, unique("stan"))
    first_name, second_name = unique("fay"), unique("gus")
    api_user(base_url, first_name)
    api_user(base_url, second_name)
    listing = api_listing(base_url, seller["access_token"], "Proxy test", 3600, start_price="10.00")

    first = page_of(browser, contexts, watch)
    log_in(first, base_url, first_name, f"/listings/{listing['id']}")
    every_control_is_labelled(first)
    first.get_by_label("Max bid ($, optional)").fill("50.00")
    first.get_by_role("button", name="Place bid").click()
    expect(first.locator("#leader-note")).to_have_text("You are the highest bidder (max $50.00).")
    expect(first.locator("#current-price")).to_have_text("$10.00")  # only as much as needed to lead
    shot(first, "listing-max-bid", full_page=False)

    second = page_of(browser, contexts, watch)
    log_in(second, base_url, second_name, f"/listings/{listing['id']}")
    second.get_by_label("Your bid ($)").fill("20.00")
    second.get_by_role("button", name="Place bid").click()
    expect(second.locator("#bid-result")).to_contain_text("You were outbid by an automatic bid")
    expect(second.locator("#leader-note")).to_be_hidden()
    # The first bidder still leads, at a price set by the automatic bid, and no maximum was revealed.
    expect(first.locator("#leader-note")).to_be_visible()
    expect(second.locator("body")).not_to_contain_text("50.00")
    watch.check()
