"""A branch's transcript: user messages as stored, assistant messages rebuilt from the event log.

The event log is the source of truth for what an agent said and did, so an assistant message is
folded from its turn's events (three queries per branch in all, never one per message):

- consecutive `token` events → one text block (a tool call or an error in between splits text);
- `tool` → a tool-call block; its `tool-result` is attached by `tool_call_id`, whichever arrives
  first and however results interleave with other calls;
- `error` → an error block; `usage` events are summed into the message's usage.

The transcript is cut at the branch's `last_event_seq`, read before anything else, and reports
it: a client continues with `GET …/events?after=<last_event_seq>` and sees every later event
exactly once, with no gap between the snapshot and the live stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from api.schemas.messages import (
    MAX_NOTICES,
    AssistantMessageOut,
    ContentBlock,
    ErrorBlock,
    NoticeOut,
    TextBlock,
    ToolCallBlock,
    ToolResult,
    TranscriptEntry,
    TranscriptOut,
    TurnStatusName,
    Usage,
    UserMessageOut,
)
from db.access import OwnerScope
from db.models import Branch, Event, Message, Turn

# Kinds that shape a transcript; the rest (stdout, status, session-id, …) only stream live.
_TRANSCRIPT_KINDS = ("token", "tool", "tool-result", "error", "usage")


@dataclass
class _Fold:
    blocks: list[ContentBlock] = field(default_factory=list)
    calls: dict[str, ToolCallBlock] = field(default_factory=dict)
    # Results that arrived before their call (out-of-order output); attached when it does.
    early_results: dict[str, ToolResult] = field(default_factory=dict)
    usage: Usage | None = None

    def add(self, seq: int, kind: str, payload: Mapping[str, Any]) -> None:
        if kind == "token":
            self._text(str(payload.get("content") or ""))
        elif kind == "tool":
            self._call(seq, payload.get("tool_call"))
        elif kind == "tool-result":
            self._result(payload)
        elif kind == "error":
            self.blocks.append(ErrorBlock(message=str(payload.get("message") or "")))
        elif kind == "usage":
            self._usage(payload)

    def finish(self) -> list[ContentBlock]:
        # A result whose call never showed up is still something the agent did: keep it.
        for call_id, result in self.early_results.items():
            self.blocks.append(ToolCallBlock(id=call_id, tool="unknown", result=result))
        self.early_results.clear()
        return self.blocks

    def _text(self, content: str) -> None:
        last = self.blocks[-1] if self.blocks else None
        if isinstance(last, TextBlock):
            last.text += content
        elif content:
            self.blocks.append(TextBlock(text=content))

    def _call(self, seq: int, raw: Any) -> None:
        call = cast(Mapping[str, Any], raw) if isinstance(raw, Mapping) else {}
        call_id = str(call.get("id") or f"event-{seq}")
        summary = call.get("summary")
        block = ToolCallBlock(
            id=call_id,
            tool=str(call.get("tool") or "unknown"),
            summary=None if summary is None else str(summary),
            input=call.get("input"),
            result=self.early_results.pop(call_id, None),
        )
        self.calls[call_id] = block
        self.blocks.append(block)

    def _result(self, payload: Mapping[str, Any]) -> None:
        call_id = str(payload.get("tool_call_id") or "")
        result = ToolResult(output=payload.get("output"), is_error=bool(payload.get("is_error")))
        call = self.calls.get(call_id)
        if call is not None:
            call.result = result
        else:
            self.early_results[call_id] = result

    def _usage(self, payload: Mapping[str, Any]) -> None:
        usage = self.usage or Usage()
        usage.input_tokens = _add_int(usage.input_tokens, payload.get("input_tokens"))
        usage.output_tokens = _add_int(usage.output_tokens, payload.get("output_tokens"))
        usage.cost_usd = _add_float(usage.cost_usd, payload.get("cost_usd"))
        self.usage = usage


def _add_int(total: int | None, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return total
    return value if total is None else total + value


def _add_float(total: float | None, value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return total
    return float(value) if total is None else total + value


def fold_events(
    events: Iterable[tuple[int, str, Mapping[str, Any]]],
) -> tuple[list[ContentBlock], Usage | None]:
    """One turn's `(seq, kind, payload)` events, in seq order → content blocks and usage."""
    fold = _Fold()
    for seq, kind, payload in events:
        fold.add(seq, kind, payload)
    return fold.finish(), fold.usage


async def load_transcript(scope: OwnerScope, branch_id: uuid.UUID) -> TranscriptOut:
    branch = await scope.get(Branch, branch_id)
    # Read first: every event up to it is committed, so the cut below has no holes.
    cursor = branch.last_event_seq
    messages = list(
        await scope.session.scalars(
            scope.select(Message)
            .where(Message.branch_id == branch.id)
            .order_by(Message.created_at, Message.id)
        )
    )
    turns = list(
        await scope.session.scalars(
            scope.select(Turn).where(Turn.branch_id == branch.id).order_by(Turn.created_at, Turn.id)
        )
    )
    folds: dict[uuid.UUID, _Fold] = {turn.id: _Fold() for turn in turns}
    rows = await scope.session.execute(
        scope.select(Event)
        .with_only_columns(Event.turn_id, Event.seq, Event.kind, Event.payload)
        .where(
            Event.branch_id == branch.id,
            Event.seq <= cursor,
            Event.turn_id.is_not(None),
            Event.kind.in_(_TRANSCRIPT_KINDS),
        )
        .order_by(Event.seq)
    )
    for turn_id, seq, kind, payload in rows:
        fold = folds.get(turn_id) if turn_id is not None else None
        if fold is not None:
            fold.add(seq, kind, payload)
    notices = await scope.session.execute(
        scope.select(Event)
        .with_only_columns(Event.seq, Event.kind, Event.payload, Event.created_at)
        .where(
            Event.branch_id == branch.id,
            Event.seq <= cursor,
            Event.kind.in_(("git", "loop")),
        )
        .order_by(Event.seq.desc())
        .limit(MAX_NOTICES)
    )
    return TranscriptOut(
        branch_id=branch.id,
        last_event_seq=cursor,
        messages=_entries(messages, turns, folds),
        notices=[
            NoticeOut(seq=seq, type=kind, data=payload, created_at=created_at)
            for seq, kind, payload, created_at in reversed(notices.all())
        ],
    )


def _entries(
    messages: list[Message], turns: list[Turn], folds: dict[uuid.UUID, _Fold]
) -> list[TranscriptEntry]:
    replies = {m.turn_id: m for m in messages if m.role == "assistant" and m.turn_id is not None}
    prompts = [m for m in messages if m.role == "user"]
    prompt_ids = {m.id for m in prompts}
    turns_of: dict[uuid.UUID, list[Turn]] = {}
    for turn in turns:
        turns_of.setdefault(turn.message_id, []).append(turn)

    # Each turn follows the message that started it; a turn without a user message (none is
    # written today) keeps its own place in time.
    timeline: list[tuple[datetime, str, Message | Turn]] = [
        (m.created_at, str(m.id), m) for m in prompts
    ]
    timeline += [(t.created_at, str(t.id), t) for t in turns if t.message_id not in prompt_ids]
    timeline.sort(key=lambda item: (item[0], item[1]))

    entries: list[TranscriptEntry] = []
    for _, _, item in timeline:
        if isinstance(item, Turn):
            entries.append(_assistant(item, replies.get(item.id), folds[item.id]))
            continue
        started = turns_of.get(item.id, [])
        turn_id = item.turn_id or (started[0].id if started else None)
        entries.append(
            UserMessageOut(
                id=item.id, content=item.content, turn_id=turn_id, created_at=item.created_at
            )
        )
        entries += [_assistant(t, replies.get(t.id), folds[t.id]) for t in started]
    return entries


def _assistant(turn: Turn, reply: Message | None, fold: _Fold) -> AssistantMessageOut:
    return AssistantMessageOut(
        id=reply.id if reply is not None else None,
        turn_id=turn.id,
        reply_to=turn.message_id,
        status=cast(TurnStatusName, turn.status),
        agent=turn.agent,
        model=turn.model,
        blocks=fold.finish(),
        commit_sha=reply.commit_sha if reply is not None else None,
        usage=fold.usage,
        error=turn.error,
        created_at=turn.created_at,
        finished_at=turn.finished_at,
    )
