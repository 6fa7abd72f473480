"""Runs the bidding app as its own process for the fault tests: ``python -m tests.bidding.serve_app``.

Like the real service (uvicorn, settings from the environment), except that tokens are verified with
the test key set passed in ``BIDDING_TEST_JWKS`` (JSON) instead of fetching it from the users service.
"""

from __future__ import annotations

import json
import os
from typing import Any

import uvicorn

from services.bidding.app import create_app
from services.bidding.config import Settings
from shared.observability import configure_logging


def main() -> None:
    jwks: dict[str, Any] = json.loads(os.environ["BIDDING_TEST_JWKS"])

    async def source() -> dict[str, Any]:
        return jwks

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    app = create_app(settings, jwks=source)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
