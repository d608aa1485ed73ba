"""The provider contract: behaviour every SandboxProvider must show.

Provider-neutral on purpose: only the protocol and the paths in SandboxInfo are used, and
commands are plain POSIX tools.
"""

from __future__ import annotations

import time

import pytest

from sandboxes.base import (
    SandboxInfo,
    SandboxNotFound,
    SandboxNotRunning,
    SandboxProvider,
    SandboxSpec,
    SandboxStatus,
)
from tests.sandboxes.conftest import SandboxFactory, eventually, pid_alive


async def test_create_starts_a_sandbox_with_a_writable_workdir(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    assert sandbox.status is SandboxStatus.STARTED
    assert sandbox.provider == provider.name
    assert sandbox.workdir.startswith(sandbox.home + "/")
    assert await provider.get(sandbox.sandbox_id) == sandbox

    script = 'test -d "$1" && test -w "$1" && touch "$1/probe" && pwd'
    result = await provider.exec(sandbox.sandbox_id, ["sh", "-c", script, "sh", sandbox.workdir])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.strip() == sandbox.workdir  # the default cwd
    assert await provider.read_file(sandbox.sandbox_id, f"{sandbox.workdir}/probe") == b""


async def test_exec_returns_stdout_stderr_and_exit_code(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    result = await provider.exec(
        sandbox.sandbox_id, ["sh", "-c", "printf 'out\\n'; printf 'err\\n' >&2; exit 3"]
    )
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.timed_out

    result = await provider.exec(sandbox.sandbox_id, ["pwd"], cwd=sandbox.home)
    assert (result.exit_code, result.stdout) == (0, sandbox.home + "\n")

    missing = await provider.exec(sandbox.sandbox_id, ["no-such-command-upstream"])
    assert missing.exit_code != 0


async def test_exec_output_is_decoded_leniently(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    result = await provider.exec(sandbox.sandbox_id, ["printf", "caf\\303\\251 \\377\\n"])
    assert result.stdout == "café \ufffd\n"


async def test_argv_arrives_verbatim_without_a_shell(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    args = [
        "it's",
        'say "hi"',
        "$(echo injected)",
        "`echo injected`",
        "$HOME",
        "a\nb",
        "*",
        "",
        "  spaced  ",
        "; touch pwned",
        "-n",
        "ünïcødé",
    ]
    result = await provider.exec(sandbox.sandbox_id, ["printf", "%s\\0", *args])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\0")[:-1] == args
    check = await provider.exec(sandbox.sandbox_id, ["ls", "-A"])
    assert "pwned" not in check.stdout


async def test_environment_is_cleared_and_call_env_arrives(
    provider: SandboxProvider, sandbox: SandboxInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_TEST_HOST_ONLY", "must-not-leak")
    result = await provider.exec(sandbox.sandbox_id, ["env"])
    assert result.exit_code == 0
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line}
    assert "UPSTREAM_TEST_HOST_ONLY" not in names
    assert "PYTEST_CURRENT_TEST" not in names  # set by pytest in this process
    assert f"HOME={sandbox.home}" in result.stdout.splitlines()
    assert "SPEC_VAR=from spec" in result.stdout.splitlines()

    tricky = "a b'c\"$d `e` \\f\nsecond line"
    result = await provider.exec(
        sandbox.sandbox_id,
        ["sh", "-c", 'printf "%s|%s" "$CALL_VAR" "$SPEC_VAR"'],
        env={"CALL_VAR": tricky, "SPEC_VAR": "overridden"},
    )
    assert result.stdout == f"{tricky}|overridden"


async def test_exec_timeout_kills_the_process_group(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    pid_file = f"{sandbox.workdir}/bg.pid"
    script = 'sleep 300 & echo $! > "$1"; echo started; wait'
    started = time.monotonic()
    result = await provider.exec(
        sandbox.sandbox_id, ["sh", "-c", script, "sh", pid_file], timeout=1.0
    )
    assert time.monotonic() - started < 10
    assert result.timed_out
    assert result.exit_code == 124
    assert "started" in result.stdout  # output before the timeout is kept

    background = int(await provider.read_file(sandbox.sandbox_id, pid_file))

    async def gone() -> bool:
        return not await pid_alive(provider, sandbox.sandbox_id, background)

    await eventually(gone, timeout=5, what="the background child to die")


async def test_background_process_logs_and_exit_code(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    log, exit_file = f"{sandbox.home}/logs/run.log", f"{sandbox.home}/logs/run.exit"
    script = "echo one; sleep 1; echo two; echo err >&2; sleep 0.5; exit 7"
    started = time.monotonic()
    handle = await provider.start_process(
        sid, ["sh", "-c", script], log_path=log, exit_path=exit_file
    )
    assert time.monotonic() - started < 5
    assert (handle.log_path, handle.exit_path) == (log, exit_file)
    state = await provider.process_state(sid, handle)
    assert state.running and state.exit_code is None

    async def first_line() -> bool:
        return b"one\n" in await provider.read_file(sid, log)

    await eventually(first_line, what="the first log line")
    early = await provider.read_file(sid, log)
    assert b"two" not in early

    async def finished() -> bool:
        return not (await provider.process_state(sid, handle)).running

    await eventually(finished, what="the process to end")
    state = await provider.process_state(sid, handle)
    assert state.exit_code == 7
    full = await provider.read_file(sid, log)
    assert full.startswith(early) and len(full) > len(early)
    assert full.splitlines() == [b"one", b"two", b"err"]
    assert await provider.read_file(sid, log, offset=len(early)) == full[len(early) :]
    assert (await provider.read_file(sid, exit_file)).strip() == b"7"


async def test_start_process_uses_cwd_and_env(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    log, exit_file = f"{sandbox.home}/cwd.log", f"{sandbox.home}/cwd.exit"
    handle = await provider.start_process(
        sid,
        ["sh", "-c", 'pwd; printf "%s\\n" "$CALL_VAR" "$SPEC_VAR"'],
        log_path=log,
        exit_path=exit_file,
        cwd=sandbox.home,
        env={"CALL_VAR": "from call"},
    )

    async def finished() -> bool:
        return (await provider.process_state(sid, handle)).exit_code is not None

    await eventually(finished, what="the process to end")
    assert (await provider.read_file(sid, log)).decode().splitlines() == [
        sandbox.home,
        "from call",
        "from spec",
    ]


async def test_kill_process_terminates_a_long_running_process(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    started = time.monotonic()
    handle = await provider.start_process(
        sid, ["sleep", "600"], log_path=f"{sandbox.home}/s.log", exit_path=f"{sandbox.home}/s.exit"
    )
    assert time.monotonic() - started < 5  # does not wait for the process
    assert (await provider.process_state(sid, handle)).running

    await provider.kill_process(sid, handle, grace_seconds=5)
    state = await provider.process_state(sid, handle)
    assert (state.running, state.exit_code) == (False, 143)


async def test_kill_process_lets_a_process_shut_down_on_sigterm(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    log = f"{sandbox.home}/g.log"
    script = "trap 'echo bye; exit 3' TERM; echo up; while :; do sleep 0.1; done"
    handle = await provider.start_process(
        sid, ["sh", "-c", script], log_path=log, exit_path=f"{sandbox.home}/g.exit"
    )

    async def up() -> bool:
        return b"up\n" in await provider.read_file(sid, log)

    await eventually(up, what="the process to install its trap")
    await provider.kill_process(sid, handle, grace_seconds=5)
    state = await provider.process_state(sid, handle)
    assert (state.running, state.exit_code) == (False, 3)
    output = await provider.read_file(sid, log)
    assert output.startswith(b"up\n") and output.endswith(b"bye\n")  # shutdown output kept


async def test_kill_process_kills_the_group_even_when_sigterm_is_ignored(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    child_file = f"{sandbox.workdir}/child.pid"
    # The child inherits the ignored SIGTERM; only SIGKILL to the whole group ends both.
    script = "trap '' TERM; sleep 600 & echo $! > \"$1\"; wait; wait"
    handle = await provider.start_process(
        sid,
        ["sh", "-c", script, "sh", child_file],
        log_path=f"{sandbox.home}/t.log",
        exit_path=f"{sandbox.home}/t.exit",
    )

    async def child_started() -> bool:
        try:
            return (await provider.read_file(sid, child_file)).strip().isdigit()
        except FileNotFoundError:
            return False

    await eventually(child_started, what="the child pid file")
    child = int(await provider.read_file(sid, child_file))

    started = time.monotonic()
    await provider.kill_process(sid, handle, grace_seconds=0.5)
    assert time.monotonic() - started < 10
    state = await provider.process_state(sid, handle)
    assert (state.running, state.exit_code) == (False, 143)
    assert not await pid_alive(provider, sid, child)
    assert not await pid_alive(provider, sid, handle.pid)


async def test_read_file_with_offset_and_limit(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid, path = sandbox.sandbox_id, f"{sandbox.workdir}/data.bin"
    data = bytes(range(256)) * 4
    await provider.write_file(sid, path, data)
    assert await provider.read_file(sid, path) == data
    assert await provider.read_file(sid, path, offset=10, limit=5) == data[10:15]
    assert await provider.read_file(sid, path, offset=1000) == data[1000:]
    assert await provider.read_file(sid, path, limit=3) == data[:3]
    assert await provider.read_file(sid, path, offset=5000) == b""
    assert await provider.read_file(sid, path, offset=3, limit=0) == b""
    with pytest.raises(FileNotFoundError):
        await provider.read_file(sid, f"{sandbox.workdir}/missing.txt")

    appended = await provider.exec(sid, ["sh", "-c", 'printf tail >> "$1"', "sh", path])
    assert appended.exit_code == 0
    assert await provider.read_file(sid, path, offset=len(data)) == b"tail"


async def test_write_file_creates_parents_and_sets_mode(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    script = f"{sandbox.home}/deep/er/run.sh"
    await provider.write_file(sid, script, b"#!/bin/sh\necho ran\n", mode=0o755)
    result = await provider.exec(sid, [script])
    assert (result.exit_code, result.stdout) == (0, "ran\n")
    mode = await provider.exec(sid, ["stat", "-c", "%a", script])
    assert mode.stdout.strip() == "755"

    secret = f"{sandbox.home}/secret.txt"
    await provider.write_file(sid, secret, b"first")
    assert (await provider.exec(sid, ["stat", "-c", "%a", secret])).stdout.strip() == "600"
    await provider.write_file(sid, secret, b"second, longer", mode=0o644)
    assert await provider.read_file(sid, secret) == b"second, longer"
    assert (await provider.exec(sid, ["stat", "-c", "%a", secret])).stdout.strip() == "644"
    seen = await provider.exec(sid, ["cat", secret])
    assert seen.stdout == "second, longer"


async def test_stop_keeps_files_and_start_brings_it_back(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    kept = f"{sandbox.workdir}/kept.txt"
    await provider.write_file(sid, kept, b"kept")
    handle = await provider.start_process(
        sid, ["sleep", "600"], log_path=f"{sandbox.home}/p.log", exit_path=f"{sandbox.home}/p.exit"
    )

    stopped = await provider.stop(sid)
    assert stopped.status is SandboxStatus.STOPPED
    assert (await provider.get(sid)).status is SandboxStatus.STOPPED
    with pytest.raises(SandboxNotRunning):
        await provider.exec(sid, ["true"])
    with pytest.raises(SandboxNotRunning):
        await provider.start_process(
            sid, ["true"], log_path=f"{sandbox.home}/q.log", exit_path=f"{sandbox.home}/q.exit"
        )
    with pytest.raises(SandboxNotRunning):
        await provider.read_file(sid, kept)
    assert not (await provider.process_state(sid, handle)).running
    assert (await provider.stop(sid)).status is SandboxStatus.STOPPED  # idempotent

    started = await provider.start(sid)
    assert started.status is SandboxStatus.STARTED
    assert (started.home, started.workdir) == (sandbox.home, sandbox.workdir)
    assert (await provider.start(sid)).status is SandboxStatus.STARTED  # idempotent
    assert await provider.read_file(sid, kept) == b"kept"
    result = await provider.exec(sid, ["cat", kept])
    assert (result.exit_code, result.stdout) == (0, "kept")
    # Processes do not survive a stop.
    assert not (await provider.process_state(sid, handle)).running


async def test_delete_is_final_and_idempotent(
    provider: SandboxProvider, sandbox: SandboxInfo
) -> None:
    sid = sandbox.sandbox_id
    await provider.delete(sid)
    with pytest.raises(SandboxNotFound):
        await provider.get(sid)
    with pytest.raises(SandboxNotFound):
        await provider.exec(sid, ["true"])
    with pytest.raises(SandboxNotFound):
        await provider.start(sid)
    with pytest.raises(SandboxNotFound):
        await provider.stop(sid)
    await provider.delete(sid)

    # The id can be used again, for a fresh sandbox.
    again = await provider.create(SandboxSpec(sid))
    try:
        listing = await provider.exec(sid, ["ls", "-A", again.workdir])
        assert (listing.exit_code, listing.stdout) == (0, "")
    finally:
        await provider.delete(sid)


async def test_create_is_idempotent(
    provider: SandboxProvider, make_sandbox: SandboxFactory
) -> None:
    first = await make_sandbox()
    sid = first.sandbox_id
    await provider.write_file(sid, f"{first.workdir}/marker", b"x")

    again = await provider.create(SandboxSpec(sid))
    assert again == first
    assert await provider.read_file(sid, f"{first.workdir}/marker") == b"x"

    await provider.stop(sid)
    restarted = await provider.create(SandboxSpec(sid))
    assert restarted.status is SandboxStatus.STARTED
    assert (await provider.exec(sid, ["cat", f"{first.workdir}/marker"])).stdout == "x"


async def test_unknown_sandbox(provider: SandboxProvider) -> None:
    with pytest.raises(SandboxNotFound):
        await provider.get("never-created")
    with pytest.raises(SandboxNotFound):
        await provider.read_file("never-created", "/home/agent/x")
    await provider.delete("never-created")
