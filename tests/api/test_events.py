"""`GET /api/branches/{branch_id}/events` and the `EventHub` behind it.

Stored-log behaviour is tested over ASGITransport (it buffers whole responses, so only with
`follow=false`); live delivery, disconnects and restarts run a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy import QueuePool, text
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.events.hub import APPLICATION_NAME, EventHub, libpq_url
from api.routes.events import BATCH_SIZE
from api.state import AppState
from config.settings import Settings
from db.engine import SessionFactory
from db.event_log import NOTIFY_CHANNEL, NewEvent, append_events
from db.models import Branch, Repo
from db.users import get_or_create_user, issue_token_for
from tests.conftest import Caller, free_port

WAIT = 10.0  # seconds: generous bound for anything that should take milliseconds


# --- helpers ---------------------------------------------------------------------------------


async def _branch(sessions: SessionFactory, login: str) -> uuid.UUID:
    async with sessions.begin() as session:
        user = await get_or_create_user(session, login)
        repo = Repo(user_id=user.id, name="r", url=f"/r/{uuid.uuid4()}", default_branch="main")
        session.add(repo)
        await session.flush()
        branch = Branch(
            user_id=user.id, repo_id=repo.id, name="b", base_branch="main", agent="claude-code"
        )
        session.add(branch)
        await session.flush()
        return branch.id


async def _token_headers(sessions: SessionFactory, login: str) -> dict[str, str]:
    async with sessions.begin() as session:
        user = await get_or_create_user(session, login)
        issued = await issue_token_for(session, user, "tests")
    return {"Authorization": f"Bearer {issued.token}"}


async def _append(sessions: SessionFactory, branch_id: uuid.UUID, *kinds: str) -> list[int]:
    """One committed batch of events; payload `n` numbers them so data can be checked."""
    async with sessions.begin() as session:
        seqs = await append_events(
            session,
            branch_id,
            [NewEvent(kind, {"n": i, "text": f"line {i}\nnext"}) for i, kind in enumerate(kinds)],
        )
    return seqs


@dataclass(frozen=True)
class Frame:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None


def _parse(block: list[str]) -> Frame:
    fields: dict[str, str] = {}
    for line in block:
        name, _, value = line.partition(":")
        fields["comment" if name == "" else name] = value.removeprefix(" ")
    return Frame(**fields)


def _frames_of(body: str) -> list[Frame]:
    assert body == "" or body.endswith("\n\n"), body
    return [_parse(chunk.split("\n")) for chunk in body.split("\n\n") if chunk]


async def _frames(response: httpx.Response) -> AsyncIterator[Frame]:
    block: list[str] = []
    async for line in response.aiter_lines():
        if line:
            block.append(line)
        elif block:
            yield _parse(block)
            block = []


def _seqs(frames: list[Frame]) -> list[int]:
    return [int(f.id) for f in frames if f.id is not None]


# --- the stored log, over ASGITransport -------------------------------------------------------


async def test_stored_events_are_framed_with_seq_kind_and_payload(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    branch_id = await _branch(sessions, "alice")
    await _append(sessions, branch_id, "turn-started", "token", "tool")
    await _append(sessions, branch_id, "tool-result")

    response = await api.get(
        f"/api/branches/{branch_id}/events", params={"follow": "false"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    frames = _frames_of(response.text)
    assert [(f.id, f.event) for f in frames] == [
        ("1", "turn-started"),
        ("2", "token"),
        ("3", "tool"),
        ("4", "tool-result"),
    ]
    # Newlines inside the payload are JSON-escaped: each event's data is one line.
    assert [json.loads(f.data or "") for f in frames] == [
        {"n": 0, "text": "line 0\nnext"},
        {"n": 1, "text": "line 1\nnext"},
        {"n": 2, "text": "line 2\nnext"},
        {"n": 0, "text": "line 0\nnext"},
    ]


async def test_resume_after_seq_from_query_or_last_event_id(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    branch_id = await _branch(sessions, "alice")
    await _append(sessions, branch_id, *["token"] * 6)
    url = f"/api/branches/{branch_id}/events?follow=false"

    async def seqs(extra: str = "", last_event_id: str | None = None) -> list[int]:
        headers = dict(alice.headers)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        response = await api.get(url + extra, headers=headers)
        assert response.status_code == 200, response.text
        return _seqs(_frames_of(response.text))

    assert await seqs() == [1, 2, 3, 4, 5, 6]
    assert await seqs("&after=0") == [1, 2, 3, 4, 5, 6]
    assert await seqs("&after=2") == [3, 4, 5, 6]
    assert await seqs(last_event_id="4") == [5, 6]
    # An EventSource reconnects to its original URL and sends the newest id in the header.
    assert await seqs("&after=2", last_event_id="5") == [6]
    assert await seqs("&after=6") == []
    assert await seqs("&after=99") == []


async def test_stored_log_is_read_in_batches_without_gaps(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    branch_id = await _branch(sessions, "alice")
    total = 2 * BATCH_SIZE + 3
    await _append(sessions, branch_id, *["token"] * total)
    response = await api.get(
        f"/api/branches/{branch_id}/events?follow=false&after=1", headers=alice.headers
    )
    assert _seqs(_frames_of(response.text)) == list(range(2, total + 1))


async def test_another_users_branch_is_not_found(
    api: httpx.AsyncClient, alice: Caller, bob: Caller, sessions: SessionFactory
) -> None:
    branch_id = await _branch(sessions, "alice")
    await _append(sessions, branch_id, "token")
    # follow=true: a 404 must come before any streaming (ASGITransport would otherwise hang).
    response = await api.get(f"/api/branches/{branch_id}/events", headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["detail"].endswith("not found")
    missing = await api.get(f"/api/branches/{uuid.uuid4()}/events", headers=alice.headers)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("query", "headers", "named"),
    [
        ("after=-1", {}, "after"),
        ("after=abc", {}, "after"),
        (f"after={2**63}", {}, "after"),
        ("", {"Last-Event-ID": "seven"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": "-3"}, "Last-Event-ID"),
        ("follow=maybe", {}, "follow"),
    ],
)
async def test_bad_resume_points_are_rejected(
    api: httpx.AsyncClient,
    alice: Caller,
    sessions: SessionFactory,
    query: str,
    headers: dict[str, str],
    named: str,
) -> None:
    branch_id = await _branch(sessions, "alice")
    response = await api.get(
        f"/api/branches/{branch_id}/events?{query}", headers={**alice.headers, **headers}
    )
    assert response.status_code == 422
    assert named in response.json()["detail"]


# --- the hub on its own ------------------------------------------------------------------------


async def test_hub_coalesces_notifications_and_filters_by_branch(database_url: str) -> None:
    hub = EventHub(libpq_url(database_url))
    await hub.start()
    try:
        assert await hub.wait_listening(WAIT)
        mine, other = uuid.uuid4(), uuid.uuid4()
        async with hub.subscribe(mine) as subscription:
            assert not await subscription.wait(0.1)
            async with await psycopg.AsyncConnection.connect(
                libpq_url(database_url), autocommit=True
            ) as conn:

                async def notify(*payloads: str) -> None:
                    for payload in payloads:
                        await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))

                await notify(f"{other}:1", "garbage", f"x:{mine}")
                assert not await subscription.wait(0.3), "not for this branch"
                # Three commits while the stream is busy elsewhere: one wake-up, not three.
                await notify(f"{mine}:1", f"{mine}:2", f"{mine}:3")
                await asyncio.sleep(0.3)
            assert await subscription.wait(WAIT)
            assert not await subscription.wait(0.3)
            assert hub.subscriber_count == 1
        assert hub.subscriber_count == 0
    finally:
        await hub.stop()


# --- live delivery under uvicorn ---------------------------------------------------------------


class _LifespanStateProbe:
    """Keeps the lifespan state dict so a test can reach the running app's `AppState`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.lifespan_state: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.lifespan_state = scope["state"]
        await self.app(scope, receive, send)

    @property
    def state(self) -> AppState:
        state = self.lifespan_state["app"]
        assert isinstance(state, AppState)
        return state


@dataclass
class Live:
    settings: Settings
    temporal: Client
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @asynccontextmanager
    async def serve(self, *, ping_seconds: float = 15.0) -> AsyncIterator[AppState]:
        async def connect(_: Settings) -> Client:
            return self.temporal

        app = _LifespanStateProbe(
            create_app(self.settings, temporal_connect=connect, event_ping_seconds=ping_seconds)
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            log_level="critical",
            # Open event streams would otherwise hold the shutdown forever.
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(WAIT):
                while not server.started:
                    assert not task.done(), "uvicorn did not start"
                    await asyncio.sleep(0.01)
            assert await app.state.events.wait_listening(WAIT)
            yield app.state
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def live(
    settings: Settings, temporal_env: WorkflowEnvironment, clean_db: None
) -> AsyncIterator[Live]:
    # No `api` fixture here: its app would hold a LISTEN connection of its own.
    yield Live(settings, temporal_env.client, free_port())


async def _collect(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    until_seq: int,
    into: list[Frame],
) -> None:
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        async for frame in _frames(response):
            into.append(frame)
            if frame.id is not None and int(frame.id) >= until_seq:
                return


async def _until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def _hub_backends(sessions: SessionFactory) -> list[int]:
    async with sessions() as session:
        rows = await session.scalars(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        )
        return list(rows)


async def test_live_events_reach_every_client_in_order_exactly_once(
    live: Live, sessions: SessionFactory
) -> None:
    branch_id = await _branch(sessions, "alice")
    headers = await _token_headers(sessions, "alice")
    await _append(sessions, branch_id, "turn-started", "token")
    async with live.serve() as state, httpx.AsyncClient(base_url=live.base_url) as client:
        url = f"/api/branches/{branch_id}/events"
        received: list[list[Frame]] = [[], []]
        readers = [
            asyncio.create_task(_collect(client, url, headers, 62, frames)) for frames in received
        ]
        await _until(lambda: all(len(frames) >= 2 for frames in received), "catch-up")
        assert state.events.subscriber_count == 2
        # Waiting streams hold no pooled database connection.
        pool = state.engine.pool
        assert isinstance(pool, QueuePool)
        await _until(lambda: pool.checkedout() == 0, "connections returned")
        for _ in range(12):
            await _append(sessions, branch_id, *["token"] * 5)
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*readers)

        for frames in received:
            assert _seqs(frames) == list(range(1, 63))
            assert [f.event for f in frames[:3]] == ["turn-started", "token", "token"]
            assert json.loads(frames[-1].data or "") == {"n": 4, "text": "line 4\nnext"}
        # One LISTEN connection for the process, however many streams are open.
        async with asyncio.timeout(WAIT):
            while (backends := await _hub_backends(sessions)) != [state.events.backend_pid]:
                await asyncio.sleep(0.05)
        assert len(backends) == 1
        # Readers that went away no longer hold a subscription.
        await _until(lambda: state.events.subscriber_count == 0, "unsubscribe")


async def test_idle_stream_sends_keepalive_pings(live: Live, sessions: SessionFactory) -> None:
    branch_id = await _branch(sessions, "alice")
    headers = await _token_headers(sessions, "alice")
    async with (
        live.serve(ping_seconds=0.2),
        httpx.AsyncClient(base_url=live.base_url) as client,
        client.stream("GET", f"/api/branches/{branch_id}/events", headers=headers) as response,
    ):
        frames: list[Frame] = []
        async with asyncio.timeout(WAIT):
            async for frame in _frames(response):
                frames.append(frame)
                if len(frames) == 2:
                    break
    assert frames == [Frame(comment="ping"), Frame(comment="ping")]


async def test_stream_survives_a_dropped_listen_connection(
    live: Live, sessions: SessionFactory
) -> None:
    branch_id = await _branch(sessions, "alice")
    headers = await _token_headers(sessions, "alice")
    async with live.serve() as state, httpx.AsyncClient(base_url=live.base_url) as client:
        frames: list[Frame] = []
        reader = asyncio.create_task(
            _collect(client, f"/api/branches/{branch_id}/events", headers, 4, frames)
        )
        await _until(lambda: state.events.subscriber_count == 1, "subscribed")
        await _append(sessions, branch_id, "token")
        await _until(lambda: len(frames) == 1, "first event")

        old_pid = state.events.backend_pid
        async with sessions.begin() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old_pid})
        # Committed while the hub is (most likely) still reconnecting: no NOTIFY reaches it.
        await _append(sessions, branch_id, "token", "token")
        await _until(lambda: state.events.connections_made == 2, "reconnect")
        assert state.events.backend_pid not in (None, old_pid)
        await _append(sessions, branch_id, "done")
        async with asyncio.timeout(WAIT):
            await reader
    assert _seqs(frames) == [1, 2, 3, 4]


async def test_reconnect_with_last_event_id_after_a_server_restart(
    live: Live, sessions: SessionFactory
) -> None:
    branch_id = await _branch(sessions, "alice")
    headers = await _token_headers(sessions, "alice")
    url = f"/api/branches/{branch_id}/events"
    await _append(sessions, branch_id, "turn-started", "token", "token")
    frames: list[Frame] = []

    async def read_until_dropped() -> None:
        async with (
            httpx.AsyncClient(base_url=live.base_url) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            async for frame in _frames(response):
                frames.append(frame)

    async with live.serve():
        reader = asyncio.create_task(read_until_dropped())
        await _until(lambda: len(frames) == 3, "catch-up")
        await _append(sessions, branch_id, "token", "token")
        await _until(lambda: len(frames) == 5, "live events")
    # The server went away under the open stream.
    with pytest.raises(httpx.HTTPError):
        async with asyncio.timeout(WAIT):
            await reader
    last_id = frames[-1].id
    assert last_id == "5"

    await _append(sessions, branch_id, "token", "tool")  # while no server runs
    async with live.serve(), httpx.AsyncClient(base_url=live.base_url) as client:
        resumed = asyncio.create_task(
            _collect(client, url + "?after=1", {**headers, "Last-Event-ID": last_id}, 9, frames)
        )
        await _until(lambda: len(frames) == 7, "missed events")
        await _append(sessions, branch_id, "token", "done")
        async with asyncio.timeout(WAIT):
            await resumed
    assert _seqs(frames) == list(range(1, 10))
    assert [f.event for f in frames[5:]] == ["token", "tool", "token", "done"]
