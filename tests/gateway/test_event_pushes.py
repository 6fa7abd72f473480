"""What the gateway pushes for the auction-format events: alerts to each recipient, and no secret fields."""

from __future__ import annotations

from services.gateway.events import pushes
from shared.events import Envelope


def test_ending_soon_goes_to_each_recipients_private_topic_without_the_list() -> None:
    envelope = Envelope(
        type="auction.ending_soon",
        producer="bidding",
        data={"listing_id": 5, "title": "Lamp", "ends_at": "2026-11-29T18:44:29.123Z", "recipient_ids": [2, 7]},
    )
    frames = list(pushes(envelope))
    assert [(topic, name) for topic, name, _, _ in frames] == [
        ("user.2", "auction.ending_soon"),
        ("user.7", "auction.ending_soon"),
    ]
    assert all(data == {"listing_id": 5, "title": "Lamp", "ends_at": "2026-11-29T18:44:29.123Z"} for *_, data in frames)


def test_a_listings_reserve_price_never_reaches_a_socket() -> None:
    data = {"listing_id": 5, "title": "Lamp", "start_price": "10.00", "reserve_price": "40.00", "buy_now_price": None}
    for kind in ("listing.created", "listing.updated"):
        frames = list(pushes(Envelope(type=kind, producer="listings", data=data)))
        assert frames and all("reserve_price" not in pushed for *_, pushed in frames)


def test_an_unsold_close_tells_the_seller_and_a_sale_tells_both_parties() -> None:
    base = {"listing_id": 5, "seller_id": 1, "final_price": None, "bid_count": 2, "outcome": "unsold"}
    unsold = list(pushes(Envelope(type="auction.closed", producer="bidding", data=base | {"winner_id": None})))
    assert ("user.1", "auction.unsold") in [(t, n) for t, n, _, _ in unsold]
    sold = base | {"winner_id": 3, "final_price": "50.00", "outcome": "sold"}
    frames = [(t, n) for t, n, _, _ in pushes(Envelope(type="auction.closed", producer="bidding", data=sold))]
    assert ("user.3", "auction.won") in frames and ("user.1", "auction.sold") in frames
    assert ("user.1", "auction.unsold") not in frames


def test_an_automatic_bid_outbids_the_bidder_it_answers() -> None:
    data = {
        "listing_id": 5,
        "bid_id": 9,
        "amount": "21.00",
        "bidder_id": 2,
        "bidder_username": "alice",
        "bid_count": 3,
        "previous_leader_id": 3,
        "seller_id": 1,
        "automatic": True,
        "reserve_met": None,
        "buy_now_available": False,
    }
    frames = list(pushes(Envelope(type="bid.placed", producer="bidding", data=data)))
    assert ("user.3", "bid.outbid") in [(t, n) for t, n, _, _ in frames]
    public = next(pushed for topic, _, _, pushed in frames if topic == "listing.5")
    assert "previous_leader_id" not in public and "seller_id" not in public and public["automatic"] is True
