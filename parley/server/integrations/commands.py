"""Chat commands: the built-ins (run by the client through the API) and bots' commands,
which are sent to their bot as a `command` event."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.accounts.service import user_public
from parley.server.chats.access import access_chat, access_member
from parley.server.db.models import Bot, Membership, User
from parley.server.integrations.bots import commands_of
from parley.server.integrations.events import BotEvents, CommandCall, Target
from parley.server.integrations.schemas import (
    BUILTINS,
    BotRef,
    CommandPublic,
    CommandSent,
)


class UnknownCommand(
    errors.NotFound, code="unknown_command", detail="No bot in this chat has that command"
): ...


async def _bots_of(session: AsyncSession, chat_id: int) -> list[tuple[User, Bot]]:
    rows = await session.execute(
        select(User, Bot)
        .join(Bot, Bot.user_id == User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.chat_id == chat_id)
        .order_by(User.id)
    )
    return list(rows.tuples())


def _ref(user: User) -> BotRef:
    return BotRef(id=user.id, username=user.username, display_name=user.display_name)


async def list_commands(
    session: AsyncSession, *, user_id: int, chat_id: int
) -> list[CommandPublic]:
    """The built-ins, then each bot's commands (the first bot to claim a name wins)."""
    await access_chat(session, user_id=user_id, chat_id=chat_id)
    found = [CommandPublic(command=name, description=text) for name, text in BUILTINS]
    seen = {c.command for c in found}
    for user, bot in await _bots_of(session, chat_id):
        for spec in commands_of(bot):
            if spec.command not in seen:
                seen.add(spec.command)
                found.append(
                    CommandPublic(
                        command=spec.command, description=spec.description, bot=_ref(user)
                    )
                )
    return found


async def run_command(
    session: AsyncSession,
    events: BotEvents,
    *,
    caller: User,
    chat_id: int,
    command: str,
    text: str,
) -> CommandSent:
    """Sends a bot command to its bot's event URL; UnknownCommand when no bot of the chat
    has it (the built-ins included: the client runs those)."""
    await access_member(session, user_id=caller.id, chat_id=chat_id)
    for user, bot in await _bots_of(session, chat_id):
        if any(spec.command == command for spec in commands_of(bot)):
            if not bot.event_url:
                return CommandSent(status="no_event_url", bot=_ref(user))
            events.command(
                CommandCall(
                    chat_id=chat_id,
                    command=command,
                    text=text,
                    user=user_public(caller),
                    target=Target(user.id, bot.event_url, bot.signing_secret),
                )
            )
            return CommandSent(status="sent", bot=_ref(user))
    raise UnknownCommand()
