"""``/api/openapi.json``: the services' OpenAPI documents merged into one for the public API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


async def merged_openapi(clients: dict[str, httpx.AsyncClient], gateway_paths: dict[str, Any]) -> dict[str, Any]:
    async def fetch(name: str, client: httpx.AsyncClient) -> tuple[str, dict[str, Any] | None]:
        try:
            response = await client.get("/openapi.json")
            response.raise_for_status()
            return name, response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("no OpenAPI from %s: %s", name, exc)
            return name, None

    documents = await asyncio.gather(*(fetch(n, c) for n, c in clients.items()))
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Auction public API", "version": "1.0.0"},
        "paths": dict(gateway_paths),
        "components": {"schemas": {}},
    }
    missing = []
    for name, document in documents:
        if document is None:
            missing.append(name)
            continue
        for path, item in document.get("paths", {}).items():
            if path.startswith(("/api/", "/media/")):
                merged["paths"][path] = item
        for schema_name, schema in document.get("components", {}).get("schemas", {}).items():
            merged["components"]["schemas"].setdefault(schema_name, schema)
    if missing:
        merged["info"]["x-missing-services"] = missing
    merged["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    return merged
