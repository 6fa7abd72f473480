"""Thin HTTP routers of the chat service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from services.chat.schemas import MAX_ID, ChatOut, MessageOut, ReadResult, SendMessage, StartChat, UnreadCount
from services.chat.service import ChatService
from shared.auth import CurrentUser
from shared.pagination import Cursor, Limit, Page
from shared.runtime import ReadSession, WriteSession

router = APIRouter()


def chat_service(request: Request) -> ChatService:
    return request.app.state.chat  # type: ignore[no-any-return]


Service = Annotated[ChatService, Depends(chat_service)]
ChatId = Annotated[int, Path(ge=1, le=MAX_ID)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255, description="same key, same user: the first result"),
]


@router.get("/api/chats", response_model=Page[ChatOut])
async def list_chats(
    principal: CurrentUser, session: ReadSession, chats: Service, limit: Limit = 20, cursor: Cursor = None
) -> Page[ChatOut]:
    return await chats.list_chats(session, principal.id, cursor, limit)


@router.post("/api/chats", status_code=201, response_model=ChatOut, responses={200: {"model": ChatOut}})
async def start_chat(
    body: StartChat, principal: CurrentUser, session: WriteSession, chats: Service, response: Response
) -> ChatOut:
    chat, created = await chats.start(session, principal, body.user_id)
    if not created:
        response.status_code = 200
    return chat


# Declared before /api/chats/{chat_id} so "unread" is never read as an id.
@router.get("/api/chats/unread", response_model=UnreadCount)
async def unread(principal: CurrentUser, session: ReadSession, chats: Service) -> UnreadCount:
    return await chats.unread(session, principal.id)


@router.get("/api/chats/{chat_id}", response_model=ChatOut)
async def get_chat(chat_id: ChatId, principal: CurrentUser, session: ReadSession, chats: Service) -> ChatOut:
    return await chats.chat(session, principal.id, chat_id)


@router.get("/api/chats/{chat_id}/messages", response_model=Page[MessageOut])
async def messages(
    chat_id: ChatId,
    principal: CurrentUser,
    session: ReadSession,
    chats: Service,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[MessageOut]:
    return await chats.messages(session, principal.id, chat_id, cursor, limit)


@router.post("/api/chats/{chat_id}/messages", status_code=201, response_model=MessageOut)
async def send_message(
    chat_id: ChatId,
    body: SendMessage,
    principal: CurrentUser,
    session: WriteSession,
    chats: Service,
    idempotency_key: IdempotencyKey = None,
) -> MessageOut:
    return await chats.send(session, principal.id, chat_id, body.text, idempotency_key)


@router.post("/api/chats/{chat_id}/read", response_model=ReadResult)
async def mark_read(chat_id: ChatId, principal: CurrentUser, session: WriteSession, chats: Service) -> ReadResult:
    return await chats.mark_read(session, principal.id, chat_id)
