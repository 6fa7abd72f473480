from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "users"

    #: PEM of the RS256 signing key; or a file holding it. Neither: one is generated under DATA_DIR (dev only).
    jwt_private_key: str | None = Field(default=None, alias="JWT_PRIVATE_KEY")
    jwt_private_key_file: Path | None = Field(default=None, alias="JWT_PRIVATE_KEY_FILE")
    access_token_seconds: int = Field(default=900, gt=0, alias="ACCESS_TOKEN_SECONDS")
    refresh_token_seconds: int = Field(default=30 * 24 * 3600, gt=0, alias="REFRESH_TOKEN_SECONDS")

    # argon2id cost (OWASP's minimum is 19 MiB, t=2); tests may lower it, never production.
    password_hash_memory_kib: int = Field(default=65536, ge=1024, alias="PASSWORD_HASH_MEMORY_KIB")
    password_hash_time_cost: int = Field(default=3, ge=1, alias="PASSWORD_HASH_TIME_COST")

    # Login throttling: failures allowed per account and per client address within the window.
    login_max_failures_per_account: int = Field(default=5, ge=1, alias="LOGIN_MAX_FAILURES_PER_ACCOUNT")
    #: High: many people share an address (offices, mobile carriers' NAT); it stops spraying, not a typo.
    login_max_failures_per_address: int = Field(default=200, ge=1, alias="LOGIN_MAX_FAILURES_PER_ADDRESS")
    login_failure_window_seconds: int = Field(default=900, ge=1, alias="LOGIN_FAILURE_WINDOW_SECONDS")
