"""The `parley` command: serve, server, gateway, migrate, users promote, reset-password."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from parley.config import Settings
from parley.logs import install_redaction


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        help="the gateway's interface (PARLEY_HOST, default 127.0.0.1); the server always "
        "binds PARLEY_SERVER_HOST (default 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, help="server port (PORT, default 5000)")
    parser.add_argument(
        "--gateway-port", type=int, help="gateway port (GATEWAY_PORT, default 8080)"
    )
    parser.add_argument("--data-dir", help="data directory (PARLEY_DATA_DIR, default ./data)")
    parser.add_argument(
        "--upstream",
        action="append",
        help="server base URL(s) for the gateway: repeat the flag or separate with commas",
    )


def build_settings(args: argparse.Namespace) -> Settings:
    """Environment first, flags on top; invalid values fail here, naming the key."""
    overrides: dict[str, object] = {}
    for flag, key in (
        ("host", "host"),
        ("port", "PORT"),
        ("gateway_port", "GATEWAY_PORT"),
        ("data_dir", "PARLEY_DATA_DIR"),
        ("upstream", "PARLEY_UPSTREAMS"),
        ("workers", "PARLEY_WORKERS"),
        ("gateways", "PARLEY_GATEWAYS"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    return Settings(**overrides)  # type: ignore[arg-type]


def _cmd_server(settings: Settings, args: argparse.Namespace) -> int:
    from parley.server.app import run_server

    if args.host is not None and args.host != settings.server_host:
        print(
            f"Note: --host is the gateway's interface; the server binds "
            f"{settings.server_host} (set PARLEY_SERVER_HOST to change it).",
            file=sys.stderr,
        )
    run_server(settings)
    return 0


def _cmd_gateway(settings: Settings, _args: argparse.Namespace) -> int:
    from parley.gateway.process import run_gateway

    run_gateway(settings)
    return 0


def _cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    from parley.serve import run_serve

    return run_serve(settings)


def _cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from parley.server.operations import migrate_database

    asyncio.run(migrate_database(settings))
    print("Database is up to date.")
    return 0


def _cmd_promote(settings: Settings, args: argparse.Namespace) -> int:
    from parley.server.operations import promote_user

    if not asyncio.run(promote_user(settings, args.username)):
        print(f"No user named {args.username!r}.", file=sys.stderr)
        return 1
    print(f"{args.username} is now an admin.")
    return 0


def _cmd_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    from parley.server.operations import password_reset_link

    link = asyncio.run(password_reset_link(settings, args.username))
    if link is None:
        print(f"No user named {args.username!r}.", file=sys.stderr)
        return 1
    print(f"A one-time link to reset the password of {args.username} (valid for an hour):")
    print(link)
    return 0


def _cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from parley.server.operations import export_instance

    counts = asyncio.run(export_instance(settings, Path(args.out), _progress))
    print(f"\nExported {counts.get('messages', 0)} messages, {counts.get('users', 0)} users"
          f" to {args.out}")  # fmt: skip
    return 0


def _cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from parley.server.operations import import_instance

    added = asyncio.run(import_instance(settings, Path(args.file), _progress))
    print(f"\nImported {added.get('messages', 0)} new messages,"
          f" {added.get('users', 0)} new users")  # fmt: skip
    return 0


def _cmd_import_slack(settings: Settings, args: argparse.Namespace) -> int:
    from parley.server.operations import import_slack

    added = asyncio.run(import_slack(settings, Path(args.file), _progress))
    print("\nImported " + ", ".join(f"{n} {what}" for what, n in added.items()))
    return 0


def _progress(what: str, done: int, total: int) -> None:
    """A progress bar on stderr: `tables [#####.....] 5/10`."""
    width = 30
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    sys.stderr.write(f"\r{what:>6} [{bar}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley chat service")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[str, Callable[[Settings, argparse.Namespace], int]]] = {
        "serve": ("gateway and server together (what `make run` starts)", _cmd_serve),
        "server": ("one API/WebSocket server process", _cmd_server),
        "gateway": ("one gateway process (static client, auth, rate limits, proxy)", _cmd_gateway),
        "migrate": ("apply database migrations", _cmd_migrate),
    }
    for name, (help_text, func) in commands.items():
        command = sub.add_parser(name, help=help_text)
        _add_common(command)
        command.set_defaults(func=func)
        if name == "serve":
            command.add_argument(
                "--workers",
                type=int,
                help="server processes behind the gateway (PARLEY_WORKERS; default 1 on "
                "SQLite, the number of cores on PostgreSQL + Redis)",
            )
            command.add_argument(
                "--gateways",
                type=int,
                help="gateway processes sharing the gateway port (PARLEY_GATEWAYS; default 1; "
                "Linux's SO_REUSEPORT spreads the connections over them)",
            )
    users = sub.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    promote = users_sub.add_parser("promote", help="make a user an admin")
    promote.add_argument("username")
    _add_common(promote)
    promote.set_defaults(func=_cmd_promote)
    reset = sub.add_parser(
        "reset-password", help="print a one-time password reset link (no e-mail needed)"
    )
    reset.add_argument("username")
    _add_common(reset)
    reset.set_defaults(func=_cmd_reset_password)
    export = sub.add_parser("export", help="write the whole instance to a ZIP file")
    export.add_argument("--out", required=True, help="the ZIP file to write")
    _add_common(export)
    export.set_defaults(func=_cmd_export)
    load = sub.add_parser("import", help="add an instance's ZIP export (idempotent)")
    load.add_argument("file", help="a ZIP file written by `parley export`")
    _add_common(load)
    load.set_defaults(func=_cmd_import)
    slack = sub.add_parser("import-slack", help="import a Slack workspace export (idempotent)")
    slack.add_argument("file", help="the ZIP of Slack's workspace export")
    _add_common(slack)
    slack.set_defaults(func=_cmd_import_slack)
    return parser


def _describe(exc: ValueError) -> str:
    """The keys and what is wrong with them, never the values (a secret may be one)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )


def main(argv: Sequence[str] | None = None) -> int:
    install_redaction()  # before anything logs: no token, cookie or password in any line
    args = make_parser().parse_args(argv)
    try:
        settings = build_settings(args)
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
            message = str(problem["msg"]).removeprefix("Value error, ")
            print(f"Invalid configuration: {where}: {message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"Invalid configuration: {_describe(exc)}", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return int(args.func(settings, args))


if __name__ == "__main__":
    raise SystemExit(main())
