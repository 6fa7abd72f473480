"""RFC 9457 problem details for every error; never a stack trace.

``{"type", "title", "status", "detail", "code"}`` plus extra members (``errors`` for validation,
``min_next_bid`` for a low bid, ...), served as ``application/problem+json``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import TRANSIENT_DB_ERRORS, is_transient_db_error

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Raise anywhere (services included) to answer with a problem; the HTTP layer renders it."""

    def __init__(self, status: int, code: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def NotFound(what: str = "resource") -> ProblemError:  # noqa: N802 - reads like an exception class
    return ProblemError(404, "not_found", f"{what} not found")


def Forbidden(detail: str = "not yours") -> ProblemError:  # noqa: N802
    return ProblemError(403, "forbidden", detail)


def Unauthorized(detail: str = "authentication required") -> ProblemError:  # noqa: N802
    return ProblemError(401, "unauthorized", detail)


def problem_body(status: int, code: str, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    # Every problem carries all five members of the contract: without a detail, the title stands in.
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail or title}
    body["code"] = code
    body.update(extra)
    return body


def problem_response(status: int, code: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        problem_body(status, code, detail, **extra), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        location = [str(part) for part in err.get("loc", ())]
        # "body" / "query" / "path" prefix tells where; the rest names the field.
        field = ".".join(location[1:]) if len(location) > 1 else (location[0] if location else "")
        errors.append({"field": field, "in": location[0] if location else "body", "message": err.get("msg", "invalid")})
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return problem_response(422, "invalid_json", "the request body is not valid JSON", errors=errors)
        names = ", ".join(sorted({e["field"] or e["in"] for e in errors}))
        return problem_response(422, "validation_error", f"invalid input: {names}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(exc.status_code, _STATUS_CODES.get(exc.status_code, "error"), detail)

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable: %s", exc)
        return problem_response(503, "service_unavailable", "a dependency is unavailable; try again shortly")

    for transient in TRANSIENT_DB_ERRORS:
        app.add_exception_handler(transient, _unavailable)  # type: ignore[arg-type]

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, "internal_error", "an unexpected error occurred; it has been logged")

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # A restarting PostgreSQL raises plain DBAPIErrors (not OperationalError): 503, not 500.
        if is_transient_db_error(exc):
            return await _unavailable(request, exc)
        return await _unexpected(request, exc)

    app.add_exception_handler(DBAPIError, _database)
