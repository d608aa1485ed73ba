"""`upstream` command line: run the stack or its parts, and administer users and tokens."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import ConfigurationError, Settings

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "host", None) is not None:
        overrides["host"] = args.host
    return Settings(**overrides)  # type: ignore[arg-type]


def _cmd_up(args: argparse.Namespace) -> int:
    from stack.supervisor import run_up

    return int(run_up(_settings(args)))


def _cmd_worker(args: argparse.Namespace) -> int:
    import worker

    worker.main()
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=5,
    )
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from db.migrate import upgrade_to_head

    settings = _settings(args)
    upgrade_to_head(settings.require_database_url())
    print("database is at the latest schema")
    return 0


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from db.engine import build_engine, build_session_factory

    engine = build_engine(settings.require_database_url(), pool_size=1)
    try:
        async with build_session_factory(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


def _cmd_users_create(args: argparse.Namespace) -> int:
    from db.users import get_or_create_user

    async def work(session: AsyncSession) -> str:
        user = await get_or_create_user(session, args.login, is_admin=args.admin)
        return f"user {user.login} ({user.id}){' admin' if user.is_admin else ''}"

    print(asyncio.run(_in_transaction(_settings(args), work)))
    return 0


def _cmd_tokens_create(args: argparse.Namespace) -> int:
    from db.users import UserNotFoundError, issue_token

    async def work(session: AsyncSession) -> str:
        return (await issue_token(session, args.login, args.name)).token

    try:
        token = asyncio.run(_in_transaction(_settings(args), work))
    except UserNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="upstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the whole service on this machine")
    up.add_argument("--data-dir", type=Path, help="data directory (env UPSTREAM_DATA_DIR)")
    up.add_argument("--port", type=int, help="API/web port (env UPSTREAM_PORT)")
    up.set_defaults(handler=_cmd_up)

    commands.add_parser("worker", help="run a Temporal worker").set_defaults(handler=_cmd_worker)

    api = commands.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", help="bind address (env UPSTREAM_HOST)")
    api.add_argument("--port", type=int, help="port (env UPSTREAM_PORT)")
    api.set_defaults(handler=_cmd_api)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        handler=_cmd_migrate
    )

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="users_command", required=True
    )
    create_user = users.add_parser("create", help="create a user (idempotent)")
    create_user.add_argument("login")
    create_user.add_argument("--admin", action="store_true")
    create_user.set_defaults(handler=_cmd_users_create)

    tokens = commands.add_parser("tokens", help="manage API tokens").add_subparsers(
        dest="tokens_command", required=True
    )
    create_token = tokens.add_parser("create", help="create an API token and print it once")
    create_token.add_argument("login")
    create_token.add_argument("--name", default="cli")
    create_token.set_defaults(handler=_cmd_tokens_create)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
