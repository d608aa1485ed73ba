from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from db.engine import SessionFactory
from db.event_log import NewEvent, append_events
from db.models import Branch, Event, Repo
from db.users import get_or_create_user


async def _branch(sessions: SessionFactory) -> uuid.UUID:
    async with sessions.begin() as session:
        user = await get_or_create_user(session, f"u-{uuid.uuid4().hex[:6]}")
        repo = Repo(user_id=user.id, name="r", url=f"/r/{uuid.uuid4()}", default_branch="main")
        session.add(repo)
        await session.flush()
        branch = Branch(
            user_id=user.id, repo_id=repo.id, name="b", base_branch="main", agent="claude-code"
        )
        session.add(branch)
        await session.flush()
        return branch.id


async def test_seq_is_per_branch_and_lines_are_idempotent(
    sessions: SessionFactory, clean_db: None
) -> None:
    branch_id = await _branch(sessions)
    turn = uuid.uuid4()
    batch = [NewEvent("token", {"content": str(i)}, turn_id=turn, line_no=i) for i in range(3)]
    async with sessions.begin() as session:
        assert await append_events(session, branch_id, batch) == [1, 2, 3]
    async with sessions.begin() as session:
        # A retried activity re-sends lines 1..2 and adds line 3.
        again = [*batch[1:], NewEvent("token", {"content": "3"}, turn_id=turn, line_no=3)]
        assert await append_events(session, branch_id, again) == [4]
    async with sessions() as session:
        rows = (await session.scalars(select(Event).order_by(Event.seq))).all()
    assert [(e.seq, e.line_no) for e in rows] == [(1, 0), (2, 1), (3, 2), (4, 3)]


async def test_concurrent_appends_never_share_a_seq(
    sessions: SessionFactory, clean_db: None
) -> None:
    branch_id = await _branch(sessions)

    async def writer(n: int) -> None:
        for i in range(10):
            async with sessions.begin() as session:
                await append_events(session, branch_id, [NewEvent("status", {"w": n, "i": i})])

    await asyncio.gather(*(writer(n) for n in range(4)))
    async with sessions() as session:
        seqs = list(await session.scalars(select(Event.seq).order_by(Event.seq)))
    assert seqs == list(range(1, 41))
