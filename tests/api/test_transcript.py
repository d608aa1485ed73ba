"""`GET /api/branches/{branch_id}/messages`: the transcript rebuilt from the event log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from api.transcript import fold_events
from db.engine import SessionFactory
from db.event_log import NewEvent, append_events
from db.models import Branch, Message, Repo, Turn
from db.users import get_or_create_user
from tests.conftest import Caller

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def _branch(sessions: SessionFactory, login: str) -> tuple[uuid.UUID, uuid.UUID]:
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
        return user.id, branch.id


async def _exchange(
    sessions: SessionFactory,
    user_id: uuid.UUID,
    branch_id: uuid.UUID,
    prompt: str,
    *,
    minute: int,
    status: str,
    reply_commit: str | None = None,
    error: str | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A user message and its turn (and, for an ended turn, the stored assistant row)."""
    at = T0 + timedelta(minutes=minute)
    async with sessions.begin() as session:
        message = Message(
            user_id=user_id, branch_id=branch_id, role="user", content=prompt, created_at=at
        )
        session.add(message)
        await session.flush()
        turn = Turn(
            user_id=user_id,
            branch_id=branch_id,
            message_id=message.id,
            status=status,
            agent="claude-code",
            model="claude-sonnet-4-5",
            error=error,
            created_at=at,
        )
        session.add(turn)
        await session.flush()
        if status in ("succeeded", "failed"):
            session.add(
                Message(
                    user_id=user_id,
                    branch_id=branch_id,
                    role="assistant",
                    content="(final text)",
                    turn_id=turn.id,
                    commit_sha=reply_commit,
                    created_at=at + timedelta(seconds=30),
                )
            )
        return message.id, turn.id


async def _append(
    sessions: SessionFactory,
    branch_id: uuid.UUID,
    turn_id: uuid.UUID | None,
    events: list[tuple[str, dict[str, Any]]],
) -> None:
    async with sessions.begin() as session:
        await append_events(
            session,
            branch_id,
            [
                NewEvent(
                    kind,
                    {"turn_id": str(turn_id), **payload} if turn_id else payload,
                    turn_id=turn_id,
                )
                for kind, payload in events
            ],
        )


def _tool(call_id: str, tool: str) -> tuple[str, dict[str, Any]]:
    return "tool", {
        "tool_call": {"id": call_id, "tool": tool, "summary": f"run {tool}", "input": {"x": 1}}
    }


def _result(call_id: str, output: str, is_error: bool = False) -> tuple[str, dict[str, Any]]:
    return "tool-result", {"tool_call_id": call_id, "output": output, "is_error": is_error}


async def test_transcript_rebuilds_assistant_blocks_from_the_event_log(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    user_id, branch_id = await _branch(sessions, "alice")
    m1, t1 = await _exchange(
        sessions, user_id, branch_id, "fix it", minute=0, status="succeeded", reply_commit="abc1"
    )
    m2, t2 = await _exchange(
        sessions, user_id, branch_id, "deploy", minute=1, status="failed", error="exit 1"
    )
    m3, t3 = await _exchange(sessions, user_id, branch_id, "and then?", minute=2, status="queued")
    # Another branch of the same user: nothing of it may leak in.
    _, elsewhere = await _branch(sessions, "alice")
    _, t_elsewhere = await _exchange(
        sessions, user_id, elsewhere, "other", minute=0, status="running"
    )
    await _append(sessions, elsewhere, t_elsewhere, [("token", {"content": "NOPE"})])

    await _append(
        sessions,
        branch_id,
        t1,
        [
            ("turn-started", {"message_id": str(m1), "agent": "claude-code"}),
            ("token", {"content": "Let me "}),
            ("session-id", {"session_id": "s-1"}),  # not content: does not split the text
            ("token", {"content": "look."}),
            _tool("a", "bash"),
            _tool("b", "read"),
        ],
    )
    # Results interleave with other output and come back in the other order.
    await _append(
        sessions,
        branch_id,
        t1,
        [
            _result("b", "file body"),
            ("token", {"content": "Both ran."}),
            ("stdout", {"content": "noise"}),
            _result("a", "boom", is_error=True),
            ("usage", {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01}),
            ("usage", {"input_tokens": 5, "output_tokens": 1, "cost_usd": None}),
            ("done", {"status": "succeeded", "finished": False}),
        ],
    )
    await _append(sessions, branch_id, None, [("status", {"status": "idle", "detail": None})])
    await _append(sessions, branch_id, None, [("git", {"op": "push", "ok": True, "sha": "abc1"})])
    await _append(
        sessions,
        branch_id,
        t2,
        [
            ("token", {"content": "Deploying"}),
            _result("c", "early"),  # before its call
            _tool("c", "deploy"),
            ("error", {"message": "sandbox died"}),
            ("token", {"content": "Retrying"}),
            ("done", {"status": "failed", "finished": False}),
        ],
    )

    response = await api.get(f"/api/branches/{branch_id}/messages", headers=alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["branch_id"] == str(branch_id)
    assert body["last_event_seq"] == 21
    # Pushes and loop runs come back too, so a reloaded conversation still shows them.
    [notice] = body["notices"]
    assert (notice["seq"], notice["type"]) == (15, "git")
    assert notice["data"] == {"op": "push", "ok": True, "sha": "abc1"}
    entries = body["messages"]
    assert [(e["role"], e.get("content"), e["turn_id"]) for e in entries] == [
        ("user", "fix it", str(t1)),
        ("assistant", None, str(t1)),
        ("user", "deploy", str(t2)),
        ("assistant", None, str(t2)),
        ("user", "and then?", str(t3)),
        ("assistant", None, str(t3)),
    ]
    first, second, queued = entries[1], entries[3], entries[5]

    assert first["reply_to"] == str(m1)
    assert first["status"] == "succeeded"
    assert first["commit_sha"] == "abc1"
    assert first["id"] is not None
    assert first["usage"] == {"input_tokens": 105, "output_tokens": 21, "cost_usd": 0.01}
    assert first["blocks"] == [
        {"type": "text", "text": "Let me look."},
        {
            "type": "tool_call",
            "id": "a",
            "tool": "bash",
            "summary": "run bash",
            "input": {"x": 1},
            "result": {"output": "boom", "is_error": True},
        },
        {
            "type": "tool_call",
            "id": "b",
            "tool": "read",
            "summary": "run read",
            "input": {"x": 1},
            "result": {"output": "file body", "is_error": False},
        },
        {"type": "text", "text": "Both ran."},
    ]

    assert second["reply_to"] == str(m2)
    assert second["status"] == "failed"
    assert second["error"] == "exit 1"
    assert second["commit_sha"] is None
    assert second["usage"] is None
    assert second["blocks"] == [
        {"type": "text", "text": "Deploying"},
        {
            "type": "tool_call",
            "id": "c",
            "tool": "deploy",
            "summary": "run deploy",
            "input": {"x": 1},
            "result": {"output": "early", "is_error": False},
        },
        {"type": "error", "message": "sandbox died"},
        {"type": "text", "text": "Retrying"},
    ]

    assert queued["reply_to"] == str(m3)
    assert queued["status"] == "queued"
    assert queued["blocks"] == []
    assert queued["id"] is None and queued["usage"] is None and queued["commit_sha"] is None


async def test_transcript_and_event_stream_meet_without_gap_or_overlap(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    user_id, branch_id = await _branch(sessions, "alice")
    _, turn = await _exchange(sessions, user_id, branch_id, "go", minute=0, status="running")
    await _append(sessions, branch_id, turn, [("token", {"content": "one "})] * 3)
    snapshot = (await api.get(f"/api/branches/{branch_id}/messages", headers=alice.headers)).json()
    assert snapshot["last_event_seq"] == 3
    assert snapshot["messages"][1]["blocks"] == [{"type": "text", "text": "one one one "}]

    await _append(sessions, branch_id, turn, [("token", {"content": "two"})])
    live = await api.get(
        f"/api/branches/{branch_id}/events",
        params={"after": snapshot["last_event_seq"], "follow": "false"},
        headers=alice.headers,
    )
    assert [line for line in live.text.splitlines() if line.startswith("id:")] == ["id: 4"]


async def test_empty_branch_and_other_users(
    api: httpx.AsyncClient, alice: Caller, bob: Caller, sessions: SessionFactory
) -> None:
    _, branch_id = await _branch(sessions, "alice")
    empty = await api.get(f"/api/branches/{branch_id}/messages", headers=alice.headers)
    assert empty.json() == {
        "branch_id": str(branch_id),
        "last_event_seq": 0,
        "messages": [],
        "notices": [],
    }
    hidden = await api.get(f"/api/branches/{branch_id}/messages", headers=bob.headers)
    assert hidden.status_code == 404


def test_fold_keeps_a_result_whose_call_never_arrived() -> None:
    blocks, usage = fold_events(
        [
            (1, "token", {"content": ""}),
            (2, "tool-result", {"tool_call_id": "z", "output": "lost", "is_error": False}),
            (3, "tool", {"tool_call": "not an object"}),
        ]
    )
    assert usage is None
    assert [block.model_dump() for block in blocks] == [
        {
            "type": "tool_call",
            "id": "event-3",
            "tool": "unknown",
            "summary": None,
            "input": None,
            "result": None,
        },
        {
            "type": "tool_call",
            "id": "z",
            "tool": "unknown",
            "summary": None,
            "input": None,
            "result": {"output": "lost", "is_error": False},
        },
    ]
