"""Running one agent turn in the branch's sandbox.

A turn is started once. The agent runs detached under a small runner script in a per-turn
directory (`output.log`, `pgid`, `exit` written after output is flushed); `mkdir launched`
inside the runner makes a second launch a no-op. This activity tails `output.log` from a byte
offset, parses each line into normalized events and appends them to the event log keyed by
(turn, line, part). Retried after a worker died, it finds the turn directory, re-attaches to the
running agent and skips lines already stored, so the log has no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from temporalio import activity

from agents.base import (
    ERROR,
    SESSION_ID,
    USAGE,
    AgentAdapter,
    AgentEvent,
    LineParser,
    TurnLaunch,
)
from agents.finished import is_finished
from agents.registry import AgentNotAvailable, adapter_for
from agents.tools import ensure_installed
from db.credentials import open_credential
from db.engine import SessionFactory
from db.event_log import NewEvent, append_events
from db.models import Event, Message, Turn
from db.turns import (
    TERMINAL,
    TurnContext,
    finish_turn,
    load_turn_context,
    mark_running,
    record_session_id,
)
from sandboxes.base import ProcessHandle, SandboxInfo, SandboxProvider
from security.crypto import Keyring
from workflows.ids import sandbox_name
from workflows.types import TurnClosure, TurnInput, TurnResult, TurnStatus

logger = logging.getLogger(__name__)

# Runs inside the sandbox. Arguments: turn dir, stdin file, then the agent's argv.
_RUNNER = r"""
dir="$1"; stdin="$2"; shift 2
mkdir "$dir/launched" 2>/dev/null || exit 0
cut -d' ' -f5 /proc/$$/stat > "$dir/pgid.tmp" && mv "$dir/pgid.tmp" "$dir/pgid"
if [ -f "$dir/env" ]; then . "$dir/env"; rm -f "$dir/env"; fi
"$@" < "$stdin" >> "$dir/output.log" 2>&1
echo $? > "$dir/exit.tmp" && mv "$dir/exit.tmp" "$dir/exit"
"""

_CHUNK = 1 << 20
_MAX_LINE = 4 << 20
_MIN_POLL = 0.005
_MAX_POLL = 0.2
_LIVENESS_EVERY = 1.0
_STARTUP_GRACE = 5.0
_HEARTBEAT_EVERY = 1.0
# Line numbers for events that belong to no output line, still unique per turn.
_STARTED_LINE = -1
_TRAILER_LINE = 2_000_000_000
_DONE_LINE = _TRAILER_LINE + 1
_CLOSURE_PART = 999


@dataclass(frozen=True)
class _TurnDir:
    root: str

    @property
    def output(self) -> str:
        return f"{self.root}/output.log"

    @property
    def exit(self) -> str:
        return f"{self.root}/exit"

    @property
    def pgid(self) -> str:
        return f"{self.root}/pgid"

    @property
    def cancelled(self) -> str:
        return f"{self.root}/cancelled"

    @property
    def prompt(self) -> str:
        return f"{self.root}/prompt"

    @property
    def env(self) -> str:
        return f"{self.root}/env"


def _turn_dir(info: SandboxInfo, turn_id: str) -> _TurnDir:
    return _TurnDir(f"{info.home}/.upstream/turns/{turn_id}")


class TurnActivities:
    def __init__(
        self,
        provider: SandboxProvider,
        sessions: SessionFactory,
        keyring: Keyring,
        *,
        tools_dir: Path,
        turn_timeout: float,
    ) -> None:
        self._provider = provider
        self._sessions = sessions
        self._keyring = keyring
        self._tools_dir = tools_dir
        self._turn_timeout = turn_timeout

    # -- activities -----------------------------------------------------------------------

    @activity.defn
    async def run_turn(self, request: TurnInput) -> TurnResult:
        turn_id = uuid.UUID(request.turn_id)
        run = await self._prepare(request)
        if isinstance(run, TurnResult):
            return run
        try:
            return await self._run(run)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.cancel_requested:
                # Stopped by the user: end the agent, record the turn as cancelled.
                await self._kill(run.info, run.files)
                await self._close(run, status=TurnStatus.CANCELLED, error=None)
            # Otherwise (timed out, worker shutting down) the agent keeps running and the next
            # attempt re-attaches.
            raise
        finally:
            logger.debug("turn %s attempt %s ended", turn_id, activity.info().attempt)

    @activity.defn
    async def cancel_turn(self, request: TurnInput) -> None:
        """Stop the agent now: mark the turn cancelled, SIGTERM then SIGKILL its group."""
        info = await self._provider.get(sandbox_name(request.branch.branch_id))
        await self._kill(info, _turn_dir(info, request.turn_id))

    @activity.defn
    async def close_turns(self, closure: TurnClosure) -> None:
        """End turns that will not run (dropped from the queue) or whose activity gave up."""
        for turn_id in closure.turn_ids:
            async with self._sessions.begin() as session:
                turn = await session.get(Turn, uuid.UUID(turn_id), with_for_update=True)
                if turn is None or turn.status in TERMINAL:
                    continue
                events = [_done_event(turn.id, closure.status, finished=False)]
                if closure.status is TurnStatus.FAILED:
                    message = {"turn_id": turn_id, "message": closure.reason}
                    error = NewEvent("error", message, turn.id, _TRAILER_LINE, _CLOSURE_PART)
                    events.insert(0, error)
                await append_events(session, turn.branch_id, events)
                await finish_turn(
                    session,
                    turn,
                    status=closure.status.value,
                    error=closure.reason if closure.status is TurnStatus.FAILED else None,
                    reply="",
                    commit_sha=None,
                )

    # -- preparation ----------------------------------------------------------------------

    async def _prepare(self, request: TurnInput) -> _Run | TurnResult:
        turn_id = uuid.UUID(request.turn_id)
        async with self._sessions() as session:
            turn = await session.get(Turn, turn_id)
        if turn is None:
            return TurnResult(request.turn_id, TurnStatus.CANCELLED, error="turn not found")
        if turn.status in TERMINAL:
            # A retry after the turn was closed: report the same commit, so it still gets pushed.
            async with self._sessions() as session:
                commit_sha = await session.scalar(
                    select(Message.commit_sha).where(
                        Message.turn_id == turn_id, Message.role == "assistant"
                    )
                )
            return TurnResult(request.turn_id, TurnStatus(turn.status), commit_sha=commit_sha)
        try:
            adapter = adapter_for(turn.agent)
        except AgentNotAvailable as exc:
            return await self._fail_early(turn, str(exc))
        spec = adapter.spec
        model = spec.model(turn.model or spec.default_model) or spec.model(spec.default_model)
        assert model is not None
        async with self._sessions() as session:
            context = await load_turn_context(session, turn_id, model.credential)
        if context is None:
            return TurnResult(request.turn_id, TurnStatus.CANCELLED, error="turn not found")
        if context.credential is None:
            return await self._fail_early(
                turn,
                f"no API key for {model.credential}: add one in settings "
                f"(PUT /api/me/credentials/{model.credential})",
            )
        info = await self._provider.get(sandbox_name(request.branch.branch_id))
        files = _turn_dir(info, request.turn_id)
        async with self._sessions.begin() as session:
            await mark_running(session, turn_id)
            await append_events(
                session,
                turn.branch_id,
                [
                    NewEvent(
                        "turn-started",
                        {
                            "turn_id": request.turn_id,
                            "message_id": str(turn.message_id),
                            "agent": turn.agent,
                            "model": model.id,
                            "loop_id": str(turn.loop_id) if turn.loop_id else None,
                        },
                        turn_id,
                        _STARTED_LINE,
                    )
                ],
            )
        return _Run(request, context, adapter, model.id, info, files)

    async def _fail_early(self, turn: Turn, message: str) -> TurnResult:
        async with self._sessions.begin() as session:
            await append_events(
                session,
                turn.branch_id,
                [
                    NewEvent(
                        "error",
                        {"turn_id": str(turn.id), "message": message},
                        turn.id,
                        _TRAILER_LINE,
                        _CLOSURE_PART,
                    ),
                    _done_event(turn.id, TurnStatus.FAILED, finished=False),
                ],
            )
            await finish_turn(
                session, turn, status="failed", error=message, reply="", commit_sha=None
            )
        return TurnResult(str(turn.id), TurnStatus.FAILED, error=message)

    # -- running --------------------------------------------------------------------------

    async def _run(self, run: _Run) -> TurnResult:
        handle = await self._attach_or_launch(run)
        return await self._follow(run, handle)

    async def _attach_or_launch(self, run: _Run) -> ProcessHandle:
        sandbox = run.info.sandbox_id
        pgid = await self._read_int(sandbox, run.files.pgid)
        if pgid is None and not await self._exists(sandbox, f"{run.files.root}/launched"):
            await self._launch(run)
        deadline = time.monotonic() + _STARTUP_GRACE
        while pgid is None:
            pgid = await self._read_int(sandbox, run.files.pgid)
            if pgid is None:
                if time.monotonic() > deadline:
                    # Launched but never ran (sandbox restarted underneath): nothing to kill.
                    return ProcessHandle(pid=0, log_path=run.files.output, exit_path=run.files.exit)
                await asyncio.sleep(0.02)
        return ProcessHandle(pid=pgid, log_path=run.files.output, exit_path=run.files.exit)

    async def _launch(self, run: _Run) -> None:
        package = run.adapter.package
        prefix = (
            await ensure_installed(self._tools_dir, package, progress=self._progress(run))
            if package is not None
            else self._tools_dir
        )
        plan = run.adapter.plan(
            TurnLaunch(
                model=run.model,
                workdir=run.info.workdir,
                home=run.info.home,
                tools_prefix=str(prefix),
                prompt_path=run.files.prompt,
                resume_session_id=run.context.resume_session_id,
            )
        )
        sandbox = run.info.sandbox_id
        assert run.context.credential is not None
        secret_env = run.adapter.credential_env(
            open_credential(self._keyring, run.context.credential),
            run.context.credential.base_url,
        )
        await self._provider.write_file(
            sandbox, run.files.prompt, run.context.agent_prompt.encode()
        )
        # Secrets reach the agent through this file only: readable inside the sandbox alone,
        # removed by the runner once read; never on a command line or in workflow history.
        await self._provider.write_file(sandbox, run.files.env, _env_file(secret_env).encode())
        for path, content in plan.files.items():
            await self._provider.write_file(sandbox, path, content.encode())
        await self._provider.start_process(
            sandbox,
            [
                "sh",
                "-c",
                _RUNNER,
                "runner",
                run.files.root,
                plan.stdin_path or "/dev/null",
                *plan.argv,
            ],
            log_path=f"{run.files.root}/runner.log",
            exit_path=f"{run.files.root}/runner.exit.{activity.info().attempt}",
            cwd=run.info.workdir,
            env=plan.env,
        )

    async def _follow(self, run: _Run, handle: ProcessHandle) -> TurnResult:
        sandbox = run.info.sandbox_id
        assert run.context.credential is not None
        parser = run.adapter.new_parser(base_url=run.context.credential.base_url)
        stored_through = await self._last_stored_line(run)
        offset, line_no = 0, 0
        started = time.monotonic()
        last_liveness = last_heartbeat = started
        interval = _MIN_POLL
        timed_out = fatal = False
        usage = _Usage()
        while True:
            chunk = await self._read(sandbox, handle.log_path, offset)
            end = chunk.rfind(b"\n")
            if end < 0 and len(chunk) >= _MAX_LINE:
                end = len(chunk) - 1  # an endless line: cut it rather than wait forever
            if end >= 0:
                lines = chunk[: end + 1].split(b"\n")[:-1]
                offset += end + 1
                batch: list[NewEvent] = []
                session_id: str | None = None
                for raw in lines:
                    events = parser.feed(raw.decode(errors="replace"))
                    usage.add(events)
                    if not fatal and any(_is_fatal(e) for e in events):
                        # The agent would retry forever (e.g. OpenCode on a 429): end it now;
                        # the parser's outcome carries the reason.
                        fatal = True
                        await self._kill(run.info, run.files, mark_cancelled=False)
                    if line_no > stored_through:
                        batch.extend(_stamp(run, events, line_no))
                        session_id = _session_id(events) or session_id
                    line_no += 1
                await self._store(run, batch, session_id)
                interval = _MIN_POLL
            now = time.monotonic()
            if now - last_heartbeat >= _HEARTBEAT_EVERY:
                activity.heartbeat(offset)
                last_heartbeat = now
            if end >= 0 and len(chunk) >= _CHUNK:
                continue  # more is waiting
            exit_code = await self._read_int(sandbox, handle.exit_path)
            if exit_code is not None:
                if await self._read(sandbox, handle.log_path, offset):
                    continue  # written just before the exit file: drain it first
                return await self._finish(run, parser, exit_code, usage, timed_out)
            if not timed_out and now - started > self._turn_timeout:
                timed_out = True
                await self._kill(run.info, run.files, mark_cancelled=False)
                continue
            if now - last_liveness >= _LIVENESS_EVERY and now - started > _STARTUP_GRACE:
                last_liveness = now
                if not await self._alive_or_exited(sandbox, handle):
                    return await self._finish(run, parser, None, usage, timed_out)
            await asyncio.sleep(interval)
            interval = min(interval * 2, _MAX_POLL)

    async def _finish(
        self,
        run: _Run,
        parser: LineParser,
        exit_code: int | None,
        usage: _Usage,
        timed_out: bool,
    ) -> TurnResult:
        trailing, outcome = parser.finish(exit_code)
        usage.add(trailing)
        cancelled = await self._exists(run.info.sandbox_id, run.files.cancelled)
        if cancelled:
            status, error = TurnStatus.CANCELLED, None
        elif timed_out:
            minutes = self._turn_timeout / 60
            status, error = TurnStatus.FAILED, f"the turn exceeded its time limit ({minutes:g} min)"
            trailing = [*trailing, AgentEvent("error", {"message": error})]
        elif outcome.succeeded:
            status, error = TurnStatus.SUCCEEDED, None
        else:
            status, error = TurnStatus.FAILED, outcome.error or "the agent failed"
        return await self._close(
            run,
            status=status,
            error=error,
            trailing=trailing,
            reply=outcome.final_text,
            session_id=outcome.session_id,
            usage=usage,
        )

    async def _close(
        self,
        run: _Run,
        *,
        status: TurnStatus,
        error: str | None,
        trailing: list[AgentEvent] | None = None,
        reply: str = "",
        session_id: str | None = None,
        usage: _Usage | None = None,
    ) -> TurnResult:
        commit_sha = await self._commit(run)
        finished = status is TurnStatus.SUCCEEDED and is_finished(reply)
        turn_id = run.context.turn.id
        events = _stamp(run, trailing or [], _TRAILER_LINE)
        events.append(_done_event(turn_id, status, finished=finished))
        async with self._sessions.begin() as session:
            if session_id:
                await record_session_id(session, turn_id, session_id)
            await append_events(session, run.context.branch.id, events)
            await finish_turn(
                session,
                run.context.turn,
                status=status.value,
                error=error,
                reply=reply,
                commit_sha=commit_sha,
            )
        spent = usage or _Usage()
        return TurnResult(
            str(turn_id),
            status,
            finished=finished,
            error=error,
            tokens=spent.tokens,
            cost_usd=spent.cost_usd,
            commit_sha=commit_sha,
        )

    # -- pieces ---------------------------------------------------------------------------

    async def _commit(self, run: _Run) -> str | None:
        """Commit what the agent changed; the turn id in the message finds it again on retry."""
        sandbox, cwd = run.info.sandbox_id, run.info.workdir
        trailer = f"Upstream-Turn: {run.context.turn.id}"
        await self._provider.exec(sandbox, ["git", "add", "-A"], cwd=cwd, timeout=120)
        staged = await self._provider.exec(
            sandbox, ["git", "diff", "--cached", "--quiet"], cwd=cwd, timeout=120
        )
        if staged.exit_code == 1:
            subject = _commit_subject(run.context.prompt)
            commit = await self._provider.exec(
                sandbox,
                ["git", "commit", "--quiet", "--no-verify", "-m", subject, "-m", trailer],
                cwd=cwd,
                timeout=120,
            )
            if commit.exit_code != 0:
                logger.warning("commit after turn failed: %s", commit.stderr.strip()[-500:])
                return None
        found = await self._provider.exec(
            sandbox,
            ["git", "log", "-1", "--format=%H", "--fixed-strings", f"--grep={trailer}"],
            cwd=cwd,
            timeout=60,
        )
        sha = found.stdout.strip()
        return sha or None

    async def _kill(
        self, info: SandboxInfo, files: _TurnDir, *, mark_cancelled: bool = True
    ) -> None:
        if mark_cancelled:
            await self._provider.write_file(info.sandbox_id, files.cancelled, b"cancelled\n")
        pgid = await self._read_int(info.sandbox_id, files.pgid)
        if pgid is not None:
            handle = ProcessHandle(pid=pgid, log_path=files.output, exit_path=files.exit)
            await self._provider.kill_process(info.sandbox_id, handle)

    async def _store(self, run: _Run, batch: list[NewEvent], session_id: str | None) -> None:
        if not batch:
            return
        async with self._sessions.begin() as session:
            # Only lines past what was stored when this attempt attached reach here; a unique
            # key still guards against a concurrent zombie attempt.
            await append_events(session, run.context.branch.id, batch, known_new=True)
            if session_id is not None:
                await record_session_id(session, run.context.turn.id, session_id)

    async def _last_stored_line(self, run: _Run) -> int:
        async with self._sessions() as session:
            stored = await session.scalar(
                select(func.max(Event.line_no)).where(
                    Event.turn_id == run.context.turn.id,
                    Event.line_no >= 0,
                    Event.line_no < _TRAILER_LINE,
                )
            )
        return -1 if stored is None else int(stored)

    def _progress(self, run: _Run) -> Callable[[str], Awaitable[None]]:
        """Install progress, visible in the branch's event stream."""

        async def report(line: str) -> None:
            activity.heartbeat()
            async with self._sessions.begin() as session:
                await append_events(
                    session,
                    run.context.branch.id,
                    [NewEvent("status", {"status": "running", "detail": line})],
                )

        return report

    async def _alive_or_exited(self, sandbox: str, handle: ProcessHandle) -> bool:
        """False only for an agent that vanished without writing its exit code (SIGKILL, OOM,
        sandbox restarted)."""
        if handle.pid == 0:
            return False
        state = await self._provider.process_state(sandbox, handle)
        return state.running or state.exit_code is not None

    async def _read(self, sandbox: str, path: str, offset: int) -> bytes:
        try:
            return await self._provider.read_file(sandbox, path, offset=offset, limit=_CHUNK)
        except FileNotFoundError:
            return b""

    async def _read_int(self, sandbox: str, path: str) -> int | None:
        text = (await self._read(sandbox, path, 0)).strip()
        with contextlib.suppress(ValueError):
            return int(text) if text else None
        return None

    async def _exists(self, sandbox: str, path: str) -> bool:
        result = await self._provider.exec(sandbox, ["test", "-e", path], timeout=30)
        return result.exit_code == 0


@dataclass
class _Usage:
    tokens: int = 0
    cost_usd: float = 0.0

    def add(self, events: list[AgentEvent]) -> None:
        for event in events:
            if event.kind == USAGE:
                payload = event.payload
                self.tokens += int(payload.get("input_tokens") or 0)
                self.tokens += int(payload.get("output_tokens") or 0)
                self.cost_usd += float(payload.get("cost_usd") or 0.0)


@dataclass(frozen=True)
class _Run:
    request: TurnInput
    context: TurnContext
    adapter: AgentAdapter
    model: str
    info: SandboxInfo
    files: _TurnDir


def _stamp(run: _Run, events: list[AgentEvent], line_no: int) -> list[NewEvent]:
    turn_id = run.context.turn.id
    return [
        NewEvent(event.kind, {"turn_id": str(turn_id), **event.payload}, turn_id, line_no, part)
        for part, event in enumerate(events)
    ]


def _is_fatal(event: AgentEvent) -> bool:
    return event.kind == ERROR and bool(event.payload.get("fatal"))


def _session_id(events: list[AgentEvent]) -> str | None:
    for event in events:
        if event.kind == SESSION_ID:
            return str(event.payload.get("session_id") or "") or None
    return None


def _done_event(turn_id: uuid.UUID, status: TurnStatus, *, finished: bool) -> NewEvent:
    return NewEvent(
        "done",
        {"turn_id": str(turn_id), "status": status.value, "finished": finished},
        turn_id,
        _DONE_LINE,
    )


def _env_file(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def _commit_subject(prompt: str) -> str:
    first = next((line.strip() for line in prompt.splitlines() if line.strip()), "agent turn")
    return first if len(first) <= 72 else first[:71] + "…"
