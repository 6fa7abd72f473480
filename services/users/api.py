"""Thin HTTP routers of the users service."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from services.users.schemas import (
    AvatarResponse,
    FeedbackLeft,
    FeedbackRequest,
    LoginRequest,
    Me,
    PublicUser,
    ReceivedFeedback,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    UserCard,
)
from services.users.service import UsersService
from shared.auth import CurrentUser
from shared.errors import ProblemError, problem_response
from shared.images import process_upload
from shared.pagination import Cursor, Limit, Page
from shared.runtime import ReadSession, WriteSession

router = APIRouter()

#: Ids within BIGINT, so an absurd one is a 422, not a database error.
EntityId = Annotated[int, Path(ge=1, le=2**63 - 1)]

DEFAULT_AVATAR = FilePath(__file__).parent / "static" / "default-avatar.svg"


def users_service(request: Request) -> UsersService:
    return request.app.state.users  # type: ignore[no-any-return]


Service = Annotated[UsersService, Depends(users_service)]


def client_address(request: Request) -> str:
    # Behind the gateway the caller's address arrives in X-Forwarded-For (the gateway sets it).
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()[:64]
    return request.client.host if request.client else "unknown"


@router.post("/api/auth/register", status_code=201, response_model=Me)
async def register(body: RegisterRequest, session: WriteSession, users: Service) -> Me:
    return await users.register(session, body)


@router.post("/api/auth/login", response_model=TokenPair, responses={401: {}, 429: {}})
async def login(
    body: LoginRequest, request: Request, session: WriteSession, users: Service
) -> TokenPair | JSONResponse:
    result = await users.login(session, body.username, body.password, client_address(request))
    if isinstance(result, ProblemError):
        # Returned, not raised: the failure just recorded must commit for throttling to count it.
        response = problem_response(result.status, result.code, result.detail, **result.extra)
        if result.status == 429:
            response.headers["Retry-After"] = str(result.extra.get("retry_after", 60))
        return response
    return result


@router.post("/api/auth/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, session: ReadSession, users: Service) -> TokenPair:
    return await users.refresh(session, body.refresh_token)


@router.get("/api/auth/jwks.json")
async def jwks(users: Service, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return users.tokens.jwks


@router.get("/api/users/me", response_model=Me)
async def me(principal: CurrentUser, session: ReadSession, users: Service) -> Me:
    return await users.me(session, await users.current(session, principal.id))


@router.get("/api/users", response_model=Page[UserCard])
async def search(
    session: ReadSession,
    users: Service,
    q: Annotated[str, Query(max_length=64, pattern=r"^[^\x00]*$")] = "",  # no NUL: PostgreSQL text refuses it
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[UserCard]:
    return await users.search(session, q, cursor, limit)


@router.get("/api/users/{user_id}", response_model=PublicUser)
async def profile(user_id: EntityId, session: ReadSession, users: Service) -> PublicUser:
    return await users.public(session, user_id)


@router.get("/api/users/{user_id}/feedback", response_model=Page[ReceivedFeedback], responses={404: {}})
async def received_feedback(
    user_id: EntityId, session: ReadSession, users: Service, limit: Limit = 20, cursor: Cursor = None
) -> Page[ReceivedFeedback]:
    return await users.received_feedback(session, user_id, cursor, limit)


@router.post(
    "/api/listings/{listing_id}/feedback",
    status_code=201,
    response_model=FeedbackLeft,
    responses={
        401: {"description": "no or bad token"},
        403: {"description": "`not_a_party`: the caller is neither the seller nor the winner"},
        409: {"description": "`not_sold` (no sale of that listing is known) or `feedback_exists`"},
    },
)
async def leave_feedback(
    listing_id: EntityId, body: FeedbackRequest, principal: CurrentUser, session: WriteSession, users: Service
) -> FeedbackLeft:
    author = await users.current(session, principal.id)
    return await users.leave_feedback(session, listing_id, author, body)


@router.put("/api/users/me/avatar", response_model=AvatarResponse)
async def set_avatar(
    principal: CurrentUser, session: WriteSession, users: Service, file: Annotated[UploadFile, File()]
) -> AvatarResponse:
    user = await users.current(session, principal.id)
    content = await process_upload(file, max_side=512)
    return AvatarResponse(avatar_url=await users.set_avatar(session, user, content))


@router.get("/media/avatars/default.svg", include_in_schema=False)
async def default_avatar() -> FileResponse:
    return FileResponse(DEFAULT_AVATAR, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/media/avatars/{name}", include_in_schema=False)
async def avatar_file(name: str, users: Service) -> FileResponse:
    return FileResponse(
        users.images.path_of("avatars", name),
        media_type="image/jpeg",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
