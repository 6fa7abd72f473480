"""Bidding service: auctions per listing, atomic bid acceptance, and closes that happen on time, once."""
