"""Users service: accounts, login, tokens (JWKS), profiles and avatars."""
