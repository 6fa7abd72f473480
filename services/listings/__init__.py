"""Listings service: categories, listings, images, watchlists, comments and the live auction projection."""
