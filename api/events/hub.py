"""`EventHub`: one LISTEN connection per API process, fanned out in memory to event streams.

Writers `NOTIFY branch_events, '<branch_id>:<seq>'` on commit (`db.event_log`). The hub only
turns those into wake-ups ("there may be new events for this branch"); streams re-select rows
themselves, so a notification carries no data that could be lost, reordered or truncated.

Race-free protocol for a stream (see `Subscription.wait`):

    async with hub.subscribe(branch_id) as subscription:   # 1. register first
        while True:
            rows = select(... seq > last ...)               # 2. then read
            ...
            await subscription.wait(timeout)               # 3. then wait

A commit that lands after step 1 sets the subscription's flag; the flag is only cleared by
`wait` returning, right before the next read, so a commit is either seen by a read or wakes
the following wait. After (re)connecting, the hub wakes every subscriber: commits made while
nobody was listening are found by that re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from db.event_log import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

APPLICATION_NAME = "upstream-event-hub"


def libpq_url(database_url: str) -> str:
    """`postgresql+psycopg://…` (SQLAlchemy) → `postgresql://…` (libpq), query kept."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Subscription:
    """Wake-ups for one stream on one branch.

    A level-triggered flag, not a queue: any number of notifications between two waits
    coalesce into one wake-up, and memory per subscriber stays constant however far behind
    the stream falls (it catches up from the database, not from here).
    """

    __slots__ = ("_flag", "branch_id")

    def __init__(self, branch_id: uuid.UUID) -> None:
        self.branch_id = branch_id
        self._flag = asyncio.Event()

    def _wake(self) -> None:
        self._flag.set()

    async def wait(self, timeout: float | None) -> bool:
        """True as soon as there may be new events (re-read now); False if `timeout` seconds
        passed quietly. Clears the flag before returning, so a notification arriving while the
        caller re-reads makes the next `wait` return at once."""
        if not self._flag.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._flag.wait()
            except TimeoutError:
                return False
        self._flag.clear()
        return True


class EventHub:
    def __init__(
        self,
        conninfo: str,
        *,
        channel: str = NOTIFY_CHANNEL,
        heartbeat_seconds: float = 30.0,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 10.0,
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._heartbeat = heartbeat_seconds
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._backend_pid: int | None = None
        self.connections_made = 0

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    @property
    def backend_pid(self) -> int | None:
        """PID of the PostgreSQL backend holding the LISTEN, while connected."""
        return self._backend_pid

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    async def wait_listening(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._listening.wait()
        except TimeoutError:
            return False
        return True

    async def start(self) -> None:
        """Connects in the background: an unreachable database must not stop the API from
        starting (health reports it); streams opened meanwhile are woken once connected."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def subscribe(self, branch_id: uuid.UUID) -> AsyncIterator[Subscription]:
        subscription = Subscription(branch_id)
        self._subscribers.setdefault(branch_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subs = self._subscribers.get(branch_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._subscribers[branch_id]

    async def _run(self) -> None:
        delay = self._retry_initial
        while True:
            made = self.connections_made
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("event hub: LISTEN connection lost (%s); reconnecting", exc)
            except Exception:
                # Never let the hub die quietly: streams would only ever ping from then on.
                log.exception("event hub: unexpected failure; reconnecting")
            finally:
                self._listening.clear()
                self._backend_pid = None
            if self.connections_made > made:
                delay = self._retry_initial
            # Jitter spreads the reconnects of many API replicas after a database restart.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311
            delay = min(delay * 2, self._retry_max)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=10,
            # A silently dropped TCP peer would otherwise leave notifies() waiting forever.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._backend_pid = conn.info.backend_pid
            self.connections_made += 1
            self._listening.set()
            # Commits made while nobody was listening were never notified to us.
            self._wake_all()
            while True:
                async for notify in conn.notifies(timeout=self._heartbeat):
                    self._dispatch(notify.payload)
                # psycopg #340: a connection inside notifies() cannot run queries, so the
                # liveness probe runs between two notifies() calls; notifications arriving
                # meanwhile are kept by psycopg and returned by the next notifies().
                async with asyncio.timeout(self._heartbeat):
                    await conn.execute("SELECT 1")
        finally:
            await conn.close()

    def _dispatch(self, payload: str) -> None:
        head, _, _ = payload.partition(":")
        try:
            branch_id = uuid.UUID(head)
        except ValueError:
            log.debug("event hub: ignoring notification %r", payload)
            return
        for subscription in self._subscribers.get(branch_id, ()):
            subscription._wake()

    def _wake_all(self) -> None:
        for subs in self._subscribers.values():
            for subscription in subs:
                subscription._wake()
