from __future__ import annotations

import uuid

from db.engine import SessionFactory
from db.models import Branch, Message, Repo, Turn
from db.turns import load_turn_context
from db.users import get_or_create_user


async def _turn(
    sessions: SessionFactory, branch: Branch, agent: str, prompt: str, reply: str | None
) -> Turn:
    async with sessions.begin() as session:
        message = Message(user_id=branch.user_id, branch_id=branch.id, role="user", content=prompt)
        session.add(message)
        await session.flush()
        turn = Turn(
            user_id=branch.user_id,
            branch_id=branch.id,
            message_id=message.id,
            agent=agent,
            status="succeeded" if reply is not None else "queued",
            agent_session_id=f"{agent}-session" if reply is not None else None,
        )
        session.add(turn)
        await session.flush()
        if reply is not None:
            session.add(
                Message(
                    user_id=branch.user_id,
                    branch_id=branch.id,
                    role="assistant",
                    content=reply,
                    turn_id=turn.id,
                )
            )
        return turn


async def _branch(sessions: SessionFactory) -> Branch:
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
        return branch


async def test_same_agent_resumes_its_session(sessions: SessionFactory, clean_db: None) -> None:
    branch = await _branch(sessions)
    await _turn(sessions, branch, "claude-code", "first", "reply one")
    second = await _turn(sessions, branch, "claude-code", "second", None)
    async with sessions() as session:
        context = await load_turn_context(session, second.id, None)
    assert context is not None
    assert context.resume_session_id == "claude-code-session"
    assert context.handover is None
    assert context.agent_prompt == "second"


async def test_switching_agent_starts_fresh_with_the_conversation(
    sessions: SessionFactory, clean_db: None
) -> None:
    branch = await _branch(sessions)
    await _turn(sessions, branch, "claude-code", "add a login page", "Added login.html")
    switched = await _turn(sessions, branch, "codex", "now add tests", None)
    later = await _turn(sessions, branch, "codex", "queued after", None)
    async with sessions() as session:
        context = await load_turn_context(session, switched.id, None)
    assert context is not None
    assert context.resume_session_id is None  # sessions do not transfer
    assert context.handover == "User: add a login page\n\nAssistant: Added login.html"
    assert context.agent_prompt.endswith("The user's new message:\n\nnow add tests")
    assert "queued after" not in context.agent_prompt
    assert later.id != switched.id
