"""The browser app in real Chromium (Debian's ``/usr/bin/chromium``) against the whole stack.

Two browser contexts are two users. Everything goes through the pages a person would use; the only
shortcuts are a few API calls to set up users or listings that a test is not about. Each test takes
screenshots into ``docs/screenshots/``.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, expect

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct-horse-battery"
XSS = "<img src=x onerror=alert(1)>"

expect.set_options(timeout=15_000)


# ------------------------------------------------------------------------------------------- helpers
def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, color)
    # A few stripes, so the picture is recognisably an image and not a flat block.
    for x in range(0, size[0], 40):
        for y in range(size[1]):
            image.putpixel((x, y), (255, 255, 255))
    image.save(buffer, "PNG")
    return buffer.getvalue()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Watch:
    """Collects what must never happen on a page: dialogs (injected script), uncaught errors, CSP refusals."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def attach(self, page: Page) -> Page:
        def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            text = message.text
            # Failed HTTP answers the app handles (4xx shown to the user) are logged by Chromium too.
            if message.type == "error" and "Failed to load resource" not in text:
                self.errors.append(text)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        return page

    def check(self) -> None:
        assert self.dialogs == [], f"a dialog opened (injected script ran?): {self.dialogs}"
        assert self.errors == [], f"errors in the browser console: {self.errors}"


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, animations="disabled")


def sign_up(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#account-link")).to_contain_text(username)
    expect(page).to_have_url(f"{base}/")


def log_in(page: Page, base: str, username: str, next_path: str = "/") -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#account-link")).to_contain_text(username)


def api_user(base: str, username: str) -> dict[str, Any]:
    """Register and log in through the API (for users a test needs but is not about)."""
    with httpx.Client(base_url=base, timeout=10) as client:
        client.post(
            "/api/auth/register", json={"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        ).raise_for_status()
        answer = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]


def api_listing(base: str, token: str, title: str, seconds: int, start_price: str = "5.00") -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        category = client.get("/api/categories").json()["items"][0]["id"]
        answer = client.post(
            "/api/listings",
            json={"title": title, "category_id": category, "start_price": start_price, "duration_seconds": seconds},
        )
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]


def fits_the_screen(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None
    assert width <= viewport["width"], f"{page.url} scrolls sideways: {width}px on a {viewport['width']}px screen"


def every_control_is_labelled(page: Page) -> None:
    """Every visible form control has an accessible name (a <label>, or aria-label where there is no room)."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map((el) => el.outerHTML)"""
    )
    assert unlabelled == [], f"controls without a label on {page.url}: {unlabelled}"


def image_loaded(page: Page, selector: str) -> None:
    """The image really decoded (a broken or blocked image has no natural width)."""
    page.wait_for_function(
        "sel => { const img = document.querySelector(sel); return img && img.complete && img.naturalWidth > 0; }",
        arg=selector,
        timeout=10_000,
    )


# ------------------------------------------------------------------------------------------- fixtures
def new_context(browser: Browser, made: list[BrowserContext], **options: Any) -> BrowserContext:
    context = browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="UTC", **options)
    made.append(context)
    return context


# ------------------------------------------------------------------------------------------- the scenario
def test_two_users_auction_from_listing_to_inbox(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    """Sign up both, list with an image, bid live, comment live (and a script-looking comment stays text),
    the timed close shows the winner on both pages, the winner finds the seller's message (and the badge
    counted it), an avatar change shows up."""
    watch = Watch()
    seller_name, bidder_name = unique("seller"), unique("bidder")
    seller_ctx = new_context(browser, contexts)
    bidder_ctx = new_context(browser, contexts)
    seller = watch.attach(seller_ctx.new_page())
    bidder = watch.attach(bidder_ctx.new_page())

    # --- sign up (and the pages before it) ---
    seller.goto(f"{base_url}/login")
    expect(seller.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
    shot(seller, "login")
    sign_up(seller, base_url, seller_name)
    bidder.goto(f"{base_url}/signup")
    shot(bidder, "signup")
    every_control_is_labelled(bidder)
    sign_up(bidder, base_url, bidder_name)

    # The bidder watches the index: a new listing is announced live.
    expect(bidder.get_by_role("heading", name="Auction listings", exact=True)).to_be_visible()

    # --- the seller creates a listing with an image; field errors come back next to the fields ---
    seller.get_by_role("link", name="Create listing").first.click()
    expect(seller.get_by_role("heading", name="Create listing", exact=True)).to_be_visible()
    seller.get_by_role("button", name="Create listing").click()
    expect(seller.locator('[data-error-for="title"]')).to_have_text("Give the listing a title.")
    expect(seller.get_by_label("Title")).to_have_attribute("aria-invalid", "true")

    title = f"Camera {uuid.uuid4().hex[:6]}"
    seller.get_by_label("Title").fill(title)
    seller.get_by_label("Category").select_option(label="Electronics")
    seller.get_by_label("Start price ($)").fill("5")
    seller.get_by_label("Bid increment ($, optional)").fill("0.50")
    seller.get_by_label("Description (optional)").fill("A fine old camera.\nWorks.")
    seller.get_by_label("Image (optional)").set_input_files(
        files=[{"name": "camera.png", "mimeType": "image/png", "buffer": png_bytes((70, 110, 200))}]
    )
    # Too short for the server (below AUCTION_MIN_DURATION_SECONDS): its 422 lands next to the duration.
    seller.get_by_label("Custom:").check()
    seller.get_by_label("Custom duration in hours").fill("0.0001")
    seller.get_by_role("button", name="Create listing").click()
    expect(seller.locator('[data-error-for="duration"]')).to_contain_text("between")
    shot(seller, "create-listing")
    every_control_is_labelled(seller)

    # 0.01 hours = 36 s: long enough to bid and comment, short enough to watch the close.
    seller.get_by_label("Custom duration in hours").fill("0.01")
    seller.get_by_role("button", name="Create listing").click()
    expect(seller).to_have_url(re.compile(r"/listings/\d+$"))
    created_at = time.monotonic()
    listing_id = int(seller.url.rsplit("/", 1)[1])
    expect(seller.locator("#listing-title")).to_have_text(title)
    expect(seller.locator(".detail-image img")).to_have_attribute("src", re.compile(r"^/media/"))
    image_loaded(seller, ".detail-image img")
    expect(seller.locator("#description")).to_have_text("A fine old camera.\nWorks.")
    expect(seller.locator("#current-price")).to_have_text("$5.00")

    # --- live on the index: the bidder is told about the new listing, then sees its card ---
    expect(bidder.locator(".new-banner")).to_contain_text("new listing")
    shot(bidder, "index-new-listing-banner", full_page=False)
    bidder.get_by_role("button", name="Show them").click()
    card = bidder.locator(f'[data-listing-id="{listing_id}"]')
    expect(card).to_contain_text(title)
    expect(card.locator(".price")).to_have_text("$5.00")
    # A second tab of the bidder stays on the index to see the card change live.
    index_tab = watch.attach(bidder_ctx.new_page())
    index_tab.goto(f"{base_url}/?status=active")
    index_card = index_tab.locator(f'[data-listing-id="{listing_id}"]')
    expect(index_card).to_contain_text("Active")

    # --- the bidder opens it, watches it and bids; the seller's page shows the bid live ---
    card.get_by_role("link", name=title).click()
    expect(bidder.locator("#listing-title")).to_have_text(title)
    expect(bidder.locator("#min-next-bid")).to_have_text("$5.00")
    bidder.locator("#watch").click()
    expect(bidder.locator("#watch")).to_have_attribute("aria-pressed", "true")
    bid_input = bidder.get_by_label("Your bid ($)")
    expect(bid_input).to_have_value("5.00")
    bid_input.fill("4.00")
    bidder.get_by_role("button", name="Place bid").click()
    expect(bidder.locator('[data-error-for="amount"]')).to_contain_text("at least $5.00")
    bid_input.fill("7.50")
    bidder.get_by_role("button", name="Place bid").click()
    expect(bidder.locator("#current-price")).to_have_text("$7.50")
    expect(bidder.locator("#leader-note")).to_be_visible()

    expect(seller.locator("#current-price")).to_have_text("$7.50")
    expect(seller.locator("#bid-count")).to_have_text("1")
    expect(seller.locator("#min-next-bid")).to_have_text("$8.00")
    expect(seller.locator("#bid-rows tr").first).to_contain_text(bidder_name)
    expect(seller.locator("#bid-rows tr").first).to_contain_text("$7.50")
    expect(index_card.locator(".price")).to_have_text("$7.50")
    expect(index_card).to_contain_text("1 bid")

    # --- comments arrive live on the other page; markup in one stays text and runs nothing ---
    bidder.get_by_label("Add a comment").fill("Is the lens included?")
    bidder.get_by_role("button", name="Post comment").click()
    expect(seller.locator("#comments")).to_contain_text("Is the lens included?")
    seller.get_by_label("Add a comment").fill(XSS)
    seller.get_by_role("button", name="Post comment").click()
    xss_comment = bidder.locator("#comments .comment .text", has_text="onerror")
    expect(xss_comment).to_have_text(XSS)
    assert bidder.locator("#comments img[src='x']").count() == 0
    assert seller.locator("#comments img[src='x']").count() == 0
    shot(seller, "listing-live-seller")
    shot(bidder, "listing-live-bidder")
    every_control_is_labelled(bidder)

    # --- while the auction runs out: an avatar change shows up in the cabinet, every tab's navbar and the
    # public profile the seller looks at ---
    bidder_id = bidder.evaluate("() => JSON.parse(localStorage.getItem('auction.session')).user.id")
    cabinet = watch.attach(bidder_ctx.new_page())
    cabinet.goto(f"{base_url}/me")
    expect(cabinet.get_by_role("heading", name=bidder_name, exact=True)).to_be_visible()
    expect(cabinet.locator("#stat-bids")).to_have_text("1")
    old_avatar = cabinet.locator("#account-link img").get_attribute("src")
    cabinet.get_by_label("New profile picture").set_input_files(
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": png_bytes((220, 120, 40), (200, 200))}]
    )
    cabinet.get_by_role("button", name="Save avatar").click()
    expect(cabinet.locator("#avatar-form .alert-success")).to_have_text("Your new avatar is saved.")
    new_avatar = cabinet.locator("#cabinet-avatar img").get_attribute("src")
    assert new_avatar and new_avatar != old_avatar and new_avatar.startswith("/media/avatars/")
    expect(cabinet.locator("#account-link img")).to_have_attribute("src", new_avatar)
    expect(bidder.locator("#account-link img")).to_have_attribute("src", new_avatar)  # the other tab too
    image_loaded(cabinet, "#cabinet-avatar img")
    shot(cabinet, "cabinet")
    every_control_is_labelled(cabinet)
    profile = watch.attach(seller_ctx.new_page())
    profile.goto(f"{base_url}/users/{bidder_id}")
    expect(profile.get_by_role("heading", name=bidder_name, exact=True)).to_be_visible()
    expect(profile.locator(".profile-head img.avatar")).to_have_attribute("src", new_avatar)
    image_loaded(profile, ".profile-head img.avatar")
    shot(profile, "profile")
    profile.close()

    # --- the timed close: both pages show the winner; the winner is told they won ---
    left = 36 - (time.monotonic() - created_at)
    print(f"time left when waiting for the close: {left:.1f}s")
    assert left > 0, "the scenario took longer than the auction lasted"
    close_timeout = int((left + 20) * 1000)
    expect(bidder.locator("#winner")).to_contain_text("You won", timeout=close_timeout)
    expect(seller.locator("#winner")).to_contain_text(f"Sold to @{bidder_name}", timeout=close_timeout)
    expect(seller.locator("#winner")).to_contain_text("$7.50")
    expect(bidder.locator("#status")).to_have_text("Ended")
    expect(bidder.locator("#countdown")).to_have_text("Ended")
    expect(bidder.locator(".toast", has_text="You won!")).to_be_visible()
    expect(seller.locator(".toast", has_text="Sold!")).to_be_visible()
    expect(bidder.locator("#comment-form")).to_be_hidden()
    expect(index_card).to_contain_text("Ended")
    expect(index_card).to_contain_text("You won")
    shot(bidder, "listing-won")
    shot(seller, "listing-sold")
    index_tab.close()

    # --- the badge counted the seller's automatic message; the inbox shows it ---
    badge = bidder.locator("#unread-badge")
    expect(badge).to_have_text("1")
    bidder.get_by_role("link", name=re.compile(r"^Inbox")).click()
    chat_item = bidder.locator(".chat-item", has_text=seller_name)
    expect(chat_item).to_be_visible()
    expect(chat_item.locator(".badge")).to_have_text("1")
    expect(chat_item.locator("img.avatar")).to_be_visible()
    shot(bidder, "inbox")
    chat_item.click()
    expect(bidder).to_have_url(re.compile(r"/inbox/\d+$"))
    auto_message = bidder.locator("#messages .msg").first
    expect(auto_message).to_be_visible()
    expect(auto_message.locator(f'a[href="/listings/{listing_id}"]')).to_have_count(1)
    expect(badge).to_have_text("0")  # read now

    # The seller opens the same conversation; a reply arrives live there.
    seller.get_by_role("link", name=re.compile(r"^Inbox")).click()
    seller.locator(".chat-item", has_text=bidder_name).click()
    expect(seller.locator("#messages .msg")).to_have_count(1)
    bidder.get_by_label("Message", exact=True).fill("Thanks! When can I pick it up?")
    bidder.get_by_label("Message", exact=True).press("Enter")
    expect(seller.locator("#messages")).to_contain_text("When can I pick it up?")
    expect(seller.locator("#messages .msg")).to_have_count(2)
    shot(seller, "chat")

    # --- the won listing is in the winner's "Won" list, and counted in the cabinet ---
    bidder.goto(f"{base_url}/?scope=won")
    expect(bidder.locator(f'[data-listing-id="{listing_id}"]')).to_contain_text("You won")
    shot(bidder, "index-won")
    for _ in range(20):  # the users service counts wins from the close event: eventually consistent
        cabinet.reload()
        expect(cabinet.locator("#stat-bids")).to_have_text("1")
        if cabinet.locator("#stat-won").text_content() == "1":
            break
        cabinet.wait_for_timeout(250)
    expect(cabinet.locator("#stat-won")).to_have_text("1")
    cabinet.close()

    # --- the same pages at phone width: nothing scrolls sideways ---
    bidder.set_viewport_size(PHONE)
    bidder.goto(f"{base_url}/listings/{listing_id}")
    expect(bidder.locator("#winner")).to_contain_text("You won")
    fits_the_screen(bidder)
    shot(bidder, "phone-listing")
    bidder.goto(f"{base_url}/inbox")
    expect(bidder.locator(".chat-item")).to_have_count(1)
    fits_the_screen(bidder)
    shot(bidder, "phone-inbox", full_page=False)
    bidder.goto(f"{base_url}/")
    expect(bidder.locator(".listing-card").first).to_be_visible()
    fits_the_screen(bidder)
    shot(bidder, "phone-index", full_page=False)

    watch.check()


# ------------------------------------------------------------------------------------------- seller tools
def test_seller_edits_ends_and_deletes_while_a_visitor_watches(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    seller_name = unique("maker")
    pair = api_user(base_url, seller_name)
    listing = api_listing(base_url, pair["access_token"], "Old lamp", 3600)
    seller = watch.attach(new_context(browser, contexts).new_page())
    visitor = watch.attach(new_context(browser, contexts).new_page())  # not logged in

    log_in(seller, base_url, seller_name, f"/listings/{listing['id']}")
    expect(seller.locator("#listing-title")).to_have_text("Old lamp")
    visitor.goto(f"{base_url}/listings/{listing['id']}")
    expect(visitor.locator("#listing-title")).to_have_text("Old lamp")
    expect(visitor.get_by_role("link", name="Log in").last).to_be_visible()

    # Edit: the visitor's page follows.
    seller.get_by_role("button", name="Edit").click()
    seller.get_by_label("Title").fill("Old brass lamp")
    seller.get_by_label("Description").fill("Brass, 1950s.")
    seller.get_by_role("button", name="Save changes").click()
    expect(seller.locator("#listing-title")).to_have_text("Old brass lamp")
    expect(visitor.locator("#listing-title")).to_have_text("Old brass lamp")
    expect(visitor.locator("#description")).to_have_text("Brass, 1950s.")

    # End now (confirmed inline, no native dialog): both see it ended without bids.
    seller.locator("#end-now").click()
    seller.locator("#end-now-confirm").click()
    expect(seller.locator("#winner")).to_have_text("This auction ended with no bids.")
    expect(visitor.locator("#winner")).to_have_text("This auction ended with no bids.")
    expect(visitor.locator("#status")).to_have_text("Ended")
    shot(seller, "listing-seller-tools")

    # Delete, now that it is closed.
    seller.locator("#delete-listing").click()
    seller.locator("#delete-listing-confirm").click()
    expect(seller).to_have_url(f"{base_url}/?scope=mine")
    expect(seller.get_by_role("heading", name="My listings", exact=True)).to_be_visible()
    expect(seller.locator(f'[data-listing-id="{listing["id"]}"]')).to_have_count(0)
    watch.check()


# ------------------------------------------------------------------------------------------- session
def test_session_survives_reload_and_a_stale_one_sends_to_login(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    name = unique("carol")
    api_user(base_url, name)
    page = watch.attach(new_context(browser, contexts).new_page())

    # Signing up with a taken name: the conflict is shown at the username field.
    page.goto(f"{base_url}/signup")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"other-{name}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator('[data-error-for="username"]')).to_have_text("That username is taken.")
    expect(page.get_by_label("Username")).to_be_focused()
    # A wrong password is refused without saying which half was wrong.
    page.get_by_role("link", name="Log in", exact=True).last.click()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")

    log_in(page, base_url, name)

    # A reload keeps the session.
    page.reload()
    expect(page.locator("#account-link")).to_contain_text(name)

    # An unusable access token is refreshed transparently with the refresh token.
    page.evaluate(
        """() => {
            const s = JSON.parse(localStorage.getItem('auction.session'));
            s.access = 'not-a-valid-token';
            localStorage.setItem('auction.session', JSON.stringify(s));
        }"""
    )
    page.goto(f"{base_url}/me")
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    fresh = page.evaluate("() => JSON.parse(localStorage.getItem('auction.session')).access")
    assert fresh != "not-a-valid-token"

    # Both tokens stale: the next call sends the user to log in, and back afterwards.
    page.evaluate(
        """() => {
            const s = JSON.parse(localStorage.getItem('auction.session'));
            s.access = 'stale'; s.refresh = 'stale';
            localStorage.setItem('auction.session', JSON.stringify(s));
        }"""
    )
    page.goto(f"{base_url}/inbox")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Finbox"))
    expect(page.get_by_text("Your session has expired")).to_be_visible()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/inbox")
    expect(page.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()

    # Logging out: protected pages ask to log in.
    page.locator("#logout").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    page.goto(f"{base_url}/listings/new")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    watch.check()


# ------------------------------------------------------------------------------------------- server clock
def test_countdown_follows_the_server_clock_not_the_browsers(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    pair = api_user(base_url, unique("dave"))
    listing = api_listing(base_url, pair["access_token"], "Clock test", 3600)
    context = new_context(browser, contexts)
    page = watch.attach(context.new_page())
    # This browser's clock is 25 minutes behind: trusting it would show about 1h 25m left.
    page.clock.install(time=datetime.now(UTC) - timedelta(minutes=25))
    page.goto(f"{base_url}/listings/{listing['id']}")
    countdown = page.locator("#countdown")
    expect(countdown).to_have_text(re.compile(r"^(59m|1h 00m) \d\ds$"))
    expect(page.locator("#listing-title")).to_have_text("Clock test")
    # The cards use the same clock.
    page.goto(f"{base_url}/?q=Clock%20test")
    card = page.locator(f'[data-listing-id="{listing["id"]}"]')
    expect(card.locator(".time-left")).to_have_text(re.compile(r"^(59m|1h 00m) \d\ds left$"))
    watch.check()


# ------------------------------------------------------------------------------------------- reconnect
def test_a_dropped_socket_reconnects_and_refetches_what_it_missed(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    """The socket drops and stays down while a bid happens: once it is back, the page shows that bid
    (refetched, since nothing replays missed events) and is live again."""
    watch = Watch()
    seller = api_user(base_url, unique("erin"))
    bidder = api_user(base_url, unique("fred"))
    listing = api_listing(base_url, seller["access_token"], "Reconnect test", 3600, start_price="1.00")
    network = {"down": False, "sockets": []}

    def on_socket(route: Any) -> None:
        if network["down"]:
            route.close(code=4002, reason="test: network down")
            return
        route.connect_to_server()
        network["sockets"].append(route)

    page = watch.attach(new_context(browser, contexts).new_page())
    page.route_web_socket(re.compile(r"/ws$"), on_socket)
    page.goto(f"{base_url}/listings/{listing['id']}")
    expect(page.locator("#current-price")).to_have_text("$1.00")
    expect(page.locator("#comments-title")).to_be_visible()

    network["down"] = True
    for route in network["sockets"]:
        route.close(code=4001, reason="test: drop")
    expect(page.locator("#live-status")).to_have_text("Reconnecting…")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {bidder['access_token']}"}) as client:
        client.post(f"/api/listings/{listing['id']}/bids", json={"amount": "3.00"}).raise_for_status()
        page.wait_for_timeout(1000)
        expect(page.locator("#current-price")).to_have_text("$1.00")  # nothing can arrive while down
        shot(page, "listing-reconnecting", full_page=False)

        network["down"] = False
        expect(page.locator("#current-price")).to_have_text("$3.00")
        expect(page.locator("#bid-rows tr")).to_have_count(1)
        expect(page.locator("#live-status")).to_be_hidden()
        client.post(f"/api/listings/{listing['id']}/bids", json={"amount": "4.00"}).raise_for_status()
        expect(page.locator("#current-price")).to_have_text("$4.00")
    watch.check()


# ------------------------------------------------------------------------------------------- index
def test_index_search_category_sort_and_load_more(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    word = uuid.uuid4().hex[:8]
    seller = api_user(base_url, unique("gina"))
    token = seller["access_token"]
    with httpx.Client(base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        categories = client.get("/api/categories").json()["items"]
        books = next(c for c in categories if c["name"] == "Books")
        art = next(c for c in categories if c["name"] == "Art")
        ids = []
        for i in range(22):
            category = books if i < 2 else art
            # Later listings end sooner, so "ending soon" reverses the "newest" order.
            answer = client.post(
                "/api/listings",
                json={
                    "title": f"{word} item {i:02d}",
                    "category_id": category["id"],
                    "start_price": "2.00",
                    "duration_seconds": 7200 - i * 60,
                },
            )
            answer.raise_for_status()
            ids.append(answer.json()["id"])

    page = watch.attach(new_context(browser, contexts).new_page())
    page.goto(f"{base_url}/")
    page.get_by_label("Search").fill(word)
    cards = page.locator(".listing-card")
    expect(cards).to_have_count(20)
    expect(page).to_have_url(re.compile(rf"[?&]q={word}"))
    expect(cards.first).to_contain_text(f"{word} item 21")  # newest first
    page.get_by_role("button", name="Load more").click()
    expect(cards).to_have_count(22)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    # By category, from the navigation (which starts a fresh browse: the search is typed again).
    page.get_by_role("link", name="By category").click()
    page.locator(".category-chips").get_by_role("link", name="Books").click()
    expect(page.get_by_role("heading", name="Listings in Books", exact=True)).to_be_visible()
    page.get_by_label("Search").fill(word)
    expect(cards).to_have_count(2)
    expect(page.get_by_label("Category")).to_have_value(str(books["id"]))
    shot(page, "index-by-category", full_page=False)

    # Ending soon: the listing with the earliest end comes first.
    page.get_by_label("Category").select_option("")
    page.get_by_label("Sort").select_option("ending")
    expect(page.get_by_label("Status")).to_have_value("active")
    expect(cards.first).to_contain_text(f"{word} item 21")
    expect(cards.nth(1)).to_contain_text(f"{word} item 20")
    page.get_by_label("Sort").select_option("")
    expect(cards.first).to_contain_text(f"{word} item 21")
    expect(cards.nth(19)).to_contain_text(f"{word} item 02")

    # Nothing found is said so.
    page.get_by_label("Search").fill(f"{word}-nothing")
    expect(page.locator(".empty")).to_contain_text("Nothing matches")
    every_control_is_labelled(page)
    watch.check()


# ------------------------------------------------------------------------------------------- inbox
def test_inbox_search_a_user_start_a_chat_and_page_back(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    watch = Watch()
    hana_name, ivan_name = unique("hana"), unique("ivan")
    api_user(base_url, hana_name)
    ivan = api_user(base_url, ivan_name)
    page = watch.attach(new_context(browser, contexts).new_page())
    log_in(page, base_url, hana_name, "/inbox")
    expect(page.get_by_text("Welcome to your inbox!")).to_be_visible()

    # Find Ivan and start a conversation.
    page.get_by_label("Start a conversation").fill(ivan_name[:7])
    page.get_by_role("button", name=f"Message {ivan_name}").click()
    expect(page).to_have_url(re.compile(r"/inbox/\d+$"))
    chat_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#chat-title")).to_have_text(ivan_name)
    expect(page.locator(".chat-item", has_text=ivan_name)).to_have_attribute("aria-current", "page")

    # Ivan writes 35 messages while Hana looks at the welcome page: the badge counts them live.
    page.get_by_role("link", name=re.compile(r"^Inbox")).click()
    with httpx.Client(
        base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {ivan['access_token']}"}
    ) as client:
        for i in range(35):
            client.post(f"/api/chats/{chat_id}/messages", json={"text": f"message {i:02d}"}).raise_for_status()
    expect(page.locator("#unread-badge")).to_have_text("35")
    item = page.locator(".chat-item", has_text=ivan_name)
    expect(item.locator(".badge")).to_have_text("35")
    expect(item).to_contain_text("message 34")
    expect(page).to_have_title(re.compile(r"^\(35\) "))

    # Opening the chat shows the newest page, reads it, and "load older" brings the rest.
    item.click()
    messages = page.locator("#messages .msg")
    expect(messages).to_have_count(30)
    expect(messages.last).to_contain_text("message 34")
    expect(page.locator("#unread-badge")).to_have_text("0")
    page.get_by_role("button", name="Load older messages").click()
    expect(messages).to_have_count(35)
    expect(messages.first).to_contain_text("message 00")
    expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()
    every_control_is_labelled(page)
    shot(page, "chat-history")
    watch.check()


# ------------------------------------------------------------------------------------------- outbid
def test_outbid_toast_on_any_page(browser: Browser, base_url: str, contexts: list[BrowserContext]) -> None:
    watch = Watch()
    seller = api_user(base_url, unique("jill"))
    rival = api_user(base_url, unique("kurt"))
    bidder_name = unique("lena")
    api_user(base_url, bidder_name)
    listing = api_listing(base_url, seller["access_token"], "Outbid test", 3600, start_price="10.00")
    page = watch.attach(new_context(browser, contexts).new_page())
    log_in(page, base_url, bidder_name, f"/listings/{listing['id']}")
    page.get_by_role("button", name="Place bid").click()
    expect(page.locator("#leader-note")).to_be_visible()

    # The bidder moves on to another page; the rival outbids them.
    page.get_by_role("link", name="My bids").first.click()
    expect(page.locator(f'[data-listing-id="{listing["id"]}"]')).to_contain_text("You lead")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {rival['access_token']}"}) as client:
        client.post(f"/api/listings/{listing['id']}/bids", json={"amount": "12.00"}).raise_for_status()
    toast = page.locator(".toast", has_text="You have been outbid")
    expect(toast).to_contain_text("“Outbid test” is now at $12.00.")
    card = page.locator(f'[data-listing-id="{listing["id"]}"]')
    expect(card.locator(".price")).to_have_text("$12.00")
    expect(card).not_to_contain_text("You lead")
    shot(page, "index-my-bids-outbid", full_page=False)
    toast.get_by_role("link", name="Bid again").click()
    expect(page.locator("#min-next-bid")).to_have_text("$12.01")
    watch.check()
