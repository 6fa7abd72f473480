"""Chat service: one-to-one conversations, unread counts, and the auction winner's message."""
