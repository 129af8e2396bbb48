"""HTTP routes of integrations: bots, their deliveries, incoming webhooks, chat commands."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from parley.server.db.models import DataExport
from parley.server.deps import NO_CONTENT, Context, ContextDep, IdPath, SessionDep, StateDep
from parley.server.integrations import bots, commands, exports, webhooks
from parley.server.integrations.events import BotEvents
from parley.server.integrations.schemas import (
    BotCreate,
    BotCreated,
    BotPublic,
    BotUpdate,
    CommandPublic,
    CommandRun,
    CommandSent,
    DeliveryPublic,
    WebhookCreate,
    WebhookPublic,
)
from parley.server.messages.service import do_send
from parley.server.state import AppState

router = APIRouter(prefix="/service/api/bots", tags=["integrations"])
chat_router = APIRouter(prefix="/service/api/chats", tags=["integrations"])
hooks_router = APIRouter(tags=["integrations"])
export_router = APIRouter(prefix="/service/api/export", tags=["integrations"])


def _events(state: AppState) -> BotEvents:
    assert state.bot_events is not None
    return state.bot_events


def _base(request: Request) -> str:
    """This site's address as the caller reached it (through the gateway: its Host)."""
    host = request.headers.get("x-forwarded-host") or request.headers.get("host")
    proto = request.headers.get("x-forwarded-proto") or request.url.scheme
    return f"{proto}://{host}" if host else str(request.base_url)


# --- bots ------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=BotCreated)
async def create_bot(body: BotCreate, ctx: ContextDep) -> BotCreated:
    return await bots.create_bot(
        ctx.session,
        ctx.state.issuer,
        owner=ctx.me.user,
        username=body.username,
        display_name=body.display_name,
    )


@router.get("", response_model=list[BotPublic])
async def list_bots(ctx: ContextDep) -> list[BotPublic]:
    return await bots.list_bots(ctx.session, owner_id=ctx.user_id)


@router.patch("/{bot_id}", response_model=BotPublic)
async def update_bot(bot_id: IdPath, body: BotUpdate, ctx: ContextDep) -> BotPublic:
    event_url = body.event_url
    if event_url is None and "event_url" in body.model_fields_set:
        event_url = ""  # null clears it
    return await bots.update_bot(
        ctx.session,
        ctx.broker,
        caller=ctx.me.user,
        bot_id=bot_id,
        display_name=body.display_name,
        event_url=event_url,
        commands=body.commands,
    )


@router.post("/{bot_id}/token", response_model=BotCreated)
async def rotate_token(bot_id: IdPath, ctx: ContextDep) -> BotCreated:
    return await bots.rotate_token(
        ctx.session, ctx.broker, ctx.state.issuer, caller=ctx.me.user, bot_id=bot_id
    )


@router.delete("/{bot_id}", **NO_CONTENT)
async def delete_bot(bot_id: IdPath, ctx: ContextDep) -> None:
    await bots.delete_bot(ctx.session, ctx.broker, caller=ctx.me.user, bot_id=bot_id, now=ctx.now())


@router.get("/{bot_id}/deliveries", response_model=list[DeliveryPublic])
async def deliveries(bot_id: IdPath, ctx: ContextDep) -> list[DeliveryPublic]:
    return await bots.deliveries(ctx.session, caller=ctx.me.user, bot_id=bot_id)


# --- webhooks and commands of a chat -----------------------------------------------------


@chat_router.post("/{chat_id}/webhooks", status_code=201, response_model=WebhookPublic)
async def create_webhook(
    chat_id: IdPath, body: WebhookCreate, request: Request, ctx: ContextDep
) -> WebhookPublic:
    return await webhooks.create_webhook(
        ctx.session,
        ctx.broker,
        user_id=ctx.user_id,
        chat_id=chat_id,
        name=body.name,
        base=_base(request),
    )


@chat_router.get("/{chat_id}/webhooks", response_model=list[WebhookPublic])
async def list_webhooks(chat_id: IdPath, request: Request, ctx: ContextDep) -> list[WebhookPublic]:
    return await webhooks.list_webhooks(
        ctx.session, user_id=ctx.user_id, chat_id=chat_id, base=_base(request)
    )


@chat_router.delete("/{chat_id}/webhooks/{hook_id}", **NO_CONTENT)
async def delete_webhook(chat_id: IdPath, hook_id: IdPath, ctx: ContextDep) -> None:
    await webhooks.delete_webhook(
        ctx.session, user_id=ctx.user_id, chat_id=chat_id, hook_id=hook_id
    )


@chat_router.get("/{chat_id}/commands", response_model=list[CommandPublic])
async def list_commands(chat_id: IdPath, ctx: ContextDep) -> list[CommandPublic]:
    return await commands.list_commands(ctx.session, user_id=ctx.user_id, chat_id=chat_id)


@chat_router.post("/{chat_id}/commands", response_model=CommandSent)
async def run_command(chat_id: IdPath, body: CommandRun, ctx: ContextDep) -> CommandSent:
    return await commands.run_command(
        ctx.session,
        _events(ctx.state),
        caller=ctx.me.user,
        chat_id=chat_id,
        command=body.command,
        text=body.text,
    )


# --- the public end of incoming webhooks ---------------------------------------------------


@hooks_router.post("/hooks/{token}", response_class=PlainTextResponse)
async def post_to_hook(
    token: str, request: Request, session: SessionDep, state: StateDep
) -> PlainTextResponse:
    """Slack's shape: JSON `{text, username?, icon_url?}` or a form with `payload`."""
    hook = await webhooks.find_hook(session, token[:100])
    text, username = webhooks.parse_payload(
        await request.body(), request.headers.get("content-type", "")
    )
    await state.throttle.hit("webhook", hook.id, detail="Too many posts to this webhook")
    sender = await webhooks.sender_for(session, state.broker, hook=hook, username=username)
    chat_id = hook.chat_id
    await session.close()  # no transaction held while the message is stored
    await do_send(
        state.writer,
        state.checks,
        state.throttle,
        metrics=state.metrics,
        user_id=sender,
        chat_id=chat_id,
        content=text,
    )
    return PlainTextResponse("ok")


# --- exports ---------------------------------------------------------------------------------


async def _start_export(ctx: Context, *, chat_id: int | None) -> JSONResponse:
    state = ctx.state
    row = await exports.start_export(
        ctx.session, user_id=ctx.user_id, chat_id=chat_id, now=ctx.now()
    )
    assert state.exports is not None
    state.exports.start(
        exports.build_export(
            state.sessions,
            state.storage,
            export_id=row.id,
            now=ctx.now(),
            scratch=state.settings.data_dir,
        )
    )
    return JSONResponse(exports.export_public(row), status_code=202)


@export_router.post("", status_code=202)
async def start_my_export(ctx: ContextDep) -> JSONResponse:
    return await _start_export(ctx, chat_id=None)


@chat_router.post("/{chat_id}/export", status_code=202)
async def start_chat_export(chat_id: IdPath, ctx: ContextDep) -> JSONResponse:
    return await _start_export(ctx, chat_id=chat_id)


@export_router.get("/{export_id}")
async def export_status(export_id: IdPath, ctx: ContextDep) -> JSONResponse:
    return JSONResponse(exports.export_public(await _my_export(ctx, export_id)))


@export_router.get("/{export_id}/download", response_class=StreamingResponse)
async def export_download(export_id: IdPath, ctx: ContextDep) -> StreamingResponse:
    row = await _my_export(ctx, export_id)
    if row.status != "ready" or row.storage_key is None:
        raise exports.NotReady()
    name = f"parley-export-{row.id}.zip"
    return StreamingResponse(
        await ctx.state.storage.open(row.storage_key),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _my_export(ctx: Context, export_id: int) -> DataExport:
    return await exports.get_export(
        ctx.session, user_id=ctx.user_id, export_id=export_id, now=ctx.now()
    )
