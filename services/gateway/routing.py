"""Which service owns which public path."""

from __future__ import annotations

import re

# Order matters: bidding's (and users') sub-resources of a listing come before listings' catch-all.
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/api/listings/[^/]+/(bids|close|buy)/?$"), "bidding"),
    (re.compile(r"^/api/bids(/.*)?$"), "bidding"),
    # Feedback on a sale belongs to the users service (profiles), also before listings' catch-all.
    (re.compile(r"^/api/listings/[^/]+/feedback/?$"), "users"),
    (re.compile(r"^/api/(auth|users)(/.*)?$"), "users"),
    (re.compile(r"^/api/(listings|categories)(/.*)?$"), "listings"),
    (re.compile(r"^/api/chats(/.*)?$"), "chat"),
    (re.compile(r"^/media/avatars/.+$"), "users"),
    (re.compile(r"^/media/listings/.+$"), "listings"),
)


def owner_of(path: str) -> str | None:
    for pattern, service in ROUTES:
        if pattern.match(path):
            return service
    return None
