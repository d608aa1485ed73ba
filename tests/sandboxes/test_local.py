"""Behaviour specific to the local provider: bubblewrap isolation, process lifetime,
host-side file access, unsafe mode, and the registry."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from config.settings import Settings
from sandboxes import local
from sandboxes.base import (
    SandboxError,
    SandboxInfo,
    SandboxNotRunning,
    SandboxSpec,
    SandboxStatus,
    SandboxUnavailable,
)
from sandboxes.local import BWRAP_MISSING, LocalSandboxProvider
from sandboxes.registry import build_provider
from tests.sandboxes.conftest import bwrap_skip_reason, eventually, pid_alive

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bwrap_provider(tmp_path: Path) -> LocalSandboxProvider:
    reason = bwrap_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    return LocalSandboxProvider(tmp_path / "sandboxes", tools_dir=tmp_path / "no-tools")


@pytest.fixture
async def boxed(bwrap_provider: LocalSandboxProvider) -> AsyncIterator[SandboxInfo]:
    info = await bwrap_provider.create(SandboxSpec(f"box-{uuid.uuid4().hex[:8]}"))
    yield info
    await bwrap_provider.delete(info.sandbox_id)


def _host_processes_mentioning(text: str) -> dict[int, list[str]]:
    """Live (non-zombie) host processes whose argv contains `text`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if text in argv and state not in ("Z", "X"):
            found[int(entry)] = argv.split("\0")
    return found


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


# -- isolation ------------------------------------------------------------------------------


async def test_sandbox_has_its_own_hostname_and_pid_namespace(
    bwrap_provider: LocalSandboxProvider, boxed: SandboxInfo
) -> None:
    sid = boxed.sandbox_id
    assert (await bwrap_provider.exec(sid, ["uname", "-n"])).stdout == "sandbox\n"

    init = await bwrap_provider.exec(sid, ["cat", "/proc/1/cmdline"])
    assert init.stdout.split("\0")[0].endswith("bwrap")
    assert init.stdout != Path("/proc/1/cmdline").read_text()

    listing = await bwrap_provider.exec(sid, ["ls", "/proc"])
    pids = {int(name) for name in listing.stdout.split() if name.isdigit()}
    assert 1 in pids
    assert len(pids) < 10, pids  # bwrap, sleep, this command: no host processes
    assert os.getpid() not in pids


async def test_sandbox_sees_a_read_only_system_and_none_of_the_host_files(
    bwrap_provider: LocalSandboxProvider, boxed: SandboxInfo, tmp_path: Path
) -> None:
    sid = boxed.sandbox_id
    touch = await bwrap_provider.exec(sid, ["touch", "/usr/upstream-probe"])
    assert touch.exit_code != 0
    assert "Read-only file system" in touch.stderr
    assert (await bwrap_provider.exec(sid, ["touch", "/etc/upstream-probe"])).exit_code != 0

    for host_path in (PROJECT_ROOT, Path.home(), tmp_path):
        assert host_path.exists()
        probe = await bwrap_provider.exec(sid, ["test", "-e", str(host_path)])
        assert probe.exit_code == 1, f"{host_path} is visible inside the sandbox"

    # Writes to the work dir land in the sandbox's host directory; /tmp is private.
    private = f"/tmp/upstream-{uuid.uuid4().hex}"
    made = await bwrap_provider.exec(
        sid, ["sh", "-c", 'echo hi > made.txt && touch "$1"', "sh", private]
    )
    assert made.exit_code == 0, made.stderr
    host_file = tmp_path / "sandboxes" / sid / "home" / "workspace" / "made.txt"
    assert host_file.read_text() == "hi\n"
    assert not Path(private).exists()


async def test_commands_run_without_capabilities(
    bwrap_provider: LocalSandboxProvider, boxed: SandboxInfo
) -> None:
    sid = boxed.sandbox_id
    status = await bwrap_provider.exec(sid, ["grep", "^CapEff:", "/proc/self/status"])
    assert status.stdout.split() == ["CapEff:", "0000000000000000"]
    remount = await bwrap_provider.exec(sid, ["mount", "-o", "remount,rw", "/usr"])
    assert remount.exit_code != 0


async def test_read_only_mounts_and_tools_dir(tmp_path: Path) -> None:
    reason = bwrap_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    repo, tools = tmp_path / "repo", tmp_path / "tools"
    repo.mkdir()
    (repo / "README").write_text("repo\n")
    tools.mkdir()
    (tools / "tool").write_text("tool\n")
    provider = LocalSandboxProvider(tmp_path / "sandboxes", tools_dir=tools)
    info = await provider.create(SandboxSpec("mounts", readonly_mounts=(str(repo),)))
    try:
        for path, content in ((repo / "README", "repo\n"), (tools / "tool", "tool\n")):
            seen = await provider.exec("mounts", ["cat", str(path)])
            assert seen.stdout == content
            write = await provider.exec("mounts", ["touch", f"{path.parent}/new"])
            assert write.exit_code != 0
        assert info.status is SandboxStatus.STARTED
    finally:
        await provider.delete("mounts")
    with pytest.raises(ValueError, match="shadow"):
        await provider.create(SandboxSpec("bad", readonly_mounts=("/home",)))
    with pytest.raises(ValueError, match="does not exist"):
        await provider.create(SandboxSpec("bad", readonly_mounts=(str(tmp_path / "nope"),)))


async def test_writable_mount_is_writable_and_survives_a_restart(
    bwrap_provider: LocalSandboxProvider, tmp_path: Path
) -> None:
    shared = tmp_path / "shared.git"
    shared.mkdir()
    provider = bwrap_provider
    await provider.create(SandboxSpec("rw", writable_mounts=(str(shared),)))
    try:
        assert (await provider.exec("rw", ["touch", f"{shared}/from-inside"])).exit_code == 0
        assert (shared / "from-inside").exists()
        await provider.stop("rw")
        await provider.start("rw")
        assert (await provider.exec("rw", ["touch", f"{shared}/again"])).exit_code == 0
        assert (shared / "again").exists()
    finally:
        await provider.delete("rw")
    with pytest.raises(ValueError, match="writable mount"):
        await provider.create(SandboxSpec("bad", writable_mounts=("/dev",)))


# -- lifetime -------------------------------------------------------------------------------


async def test_sandbox_outlives_the_process_that_created_it(
    bwrap_provider: LocalSandboxProvider, tmp_path: Path
) -> None:
    root = tmp_path / "sandboxes"
    creator = textwrap.dedent(
        f"""
        import asyncio, os
        from pathlib import Path
        from sandboxes.base import SandboxSpec
        from sandboxes.local import LocalSandboxProvider

        async def main():
            provider = LocalSandboxProvider(Path({str(root)!r}))
            await provider.create(SandboxSpec("orphan"))
            await provider.exec("orphan", ["touch", "creator-was-here"])
            print(os.getpid())

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", creator],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert done.returncode == 0, done.stderr
    creator_pid = int(done.stdout)
    assert not Path(f"/proc/{creator_pid}").exists()
    try:
        info = await bwrap_provider.get("orphan")
        assert info.status is SandboxStatus.STARTED
        result = await bwrap_provider.exec("orphan", ["cat", "creator-was-here"])
        assert result.exit_code == 0
        keepers = [
            pid
            for pid, argv in _host_processes_mentioning(str(root / "orphan")).items()
            if "upstream-keeper" in argv
        ]
        assert len(keepers) == 1
        assert _ppid(keepers[0]) != os.getpid()
    finally:
        await bwrap_provider.delete("orphan")
    assert _host_processes_mentioning(str(root / "orphan")) == {}


def _sandbox_processes(root: Path, sid: str) -> dict[str, int]:
    """Host pids of the keeper, the outer bwrap and the sandbox's pid 1."""
    procs = _host_processes_mentioning(str(root / sid / "home"))
    keeper = next(pid for pid, argv in procs.items() if "upstream-keeper" in argv)
    outer = next(pid for pid in procs if pid != keeper and _ppid(pid) == keeper)
    inner = next(pid for pid in procs if _ppid(pid) == outer)
    return {"keeper": keeper, "bwrap": outer, "pid1": inner}


@pytest.mark.parametrize("victim", ["bwrap", "keeper", "pid1"])
async def test_killing_the_sandbox_from_outside_reports_stopped(
    bwrap_provider: LocalSandboxProvider, boxed: SandboxInfo, tmp_path: Path, victim: str
) -> None:
    sid = boxed.sandbox_id
    processes = _sandbox_processes(tmp_path / "sandboxes", sid)
    os.kill(processes[victim], signal.SIGKILL)

    async def stopped() -> bool:
        return (await bwrap_provider.get(sid)).status is SandboxStatus.STOPPED

    await eventually(stopped, timeout=5, what="STOPPED")
    with pytest.raises(SandboxNotRunning):
        await bwrap_provider.exec(sid, ["true"])

    async def all_gone() -> bool:
        return _host_processes_mentioning(str(tmp_path / "sandboxes" / sid / "home")) == {}

    await eventually(all_gone, timeout=5, what="every sandbox process to exit")
    assert (await bwrap_provider.start(sid)).status is SandboxStatus.STARTED
    assert (await bwrap_provider.exec(sid, ["true"])).exit_code == 0


async def test_a_sandbox_that_fails_to_start_reports_why(
    bwrap_provider: LocalSandboxProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: simulated failure' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(bwrap_provider, "_bwrap", str(broken))
    with pytest.raises(SandboxError, match="simulated failure"):
        await bwrap_provider.create(SandboxSpec("broken"))
    assert (await bwrap_provider.get("broken")).status is SandboxStatus.STOPPED
    assert _host_processes_mentioning(str(tmp_path / "sandboxes" / "broken")) == {}
    monkeypatch.undo()
    assert (await bwrap_provider.start("broken")).status is SandboxStatus.STARTED
    await bwrap_provider.delete("broken")


async def test_delete_leaves_no_process_behind(
    bwrap_provider: LocalSandboxProvider, tmp_path: Path
) -> None:
    info = await bwrap_provider.create(SandboxSpec("gone"))
    await bwrap_provider.start_process(
        "gone", ["sleep", "600"], log_path=f"{info.home}/l", exit_path=f"{info.home}/e"
    )
    home = str(tmp_path / "sandboxes" / "gone" / "home")
    assert len(_host_processes_mentioning(home)) == 3  # keeper, bwrap, pid 1
    await bwrap_provider.delete("gone")
    assert _host_processes_mentioning(home) == {}
    assert not (tmp_path / "sandboxes" / "gone").exists()


async def test_cancelled_exec_kills_its_command(
    bwrap_provider: LocalSandboxProvider, boxed: SandboxInfo
) -> None:
    sid = boxed.sandbox_id
    pid_file = f"{boxed.workdir}/cmd.pid"
    task = asyncio.ensure_future(
        bwrap_provider.exec(sid, ["sh", "-c", 'echo $$ > "$1"; exec sleep 600', "sh", pid_file])
    )

    async def written() -> bool:
        try:
            return (await bwrap_provider.read_file(sid, pid_file)).strip().isdigit()
        except FileNotFoundError:
            return False

    await eventually(written, what="the command to start")
    pid = int(await bwrap_provider.read_file(sid, pid_file))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def gone() -> bool:
        return not await pid_alive(bwrap_provider, sid, pid)

    await eventually(gone, timeout=5, what="the cancelled command to die")


# -- host-side file access -----------------------------------------------------------------


@pytest.fixture(params=["bwrap", "unsafe"])
def any_local(request: pytest.FixtureRequest, tmp_path: Path) -> LocalSandboxProvider:
    if request.param == "bwrap":
        reason = bwrap_skip_reason()
        if reason is not None:
            pytest.skip(reason)
    return LocalSandboxProvider(tmp_path / "sandboxes", unsafe=request.param == "unsafe")


@pytest.fixture
async def files_box(any_local: LocalSandboxProvider) -> AsyncIterator[SandboxInfo]:
    info = await any_local.create(SandboxSpec("files"))
    yield info
    await any_local.delete("files")


async def test_file_access_is_confined_to_the_home(
    any_local: LocalSandboxProvider, files_box: SandboxInfo, tmp_path: Path
) -> None:
    sid, home = files_box.sandbox_id, files_box.home
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret")

    for path in ("/etc/passwd", f"{home}/../x", f"{home}/workspace/../../x", "relative/path"):
        with pytest.raises(SandboxError):
            await any_local.read_file(sid, path)
        with pytest.raises(SandboxError):
            await any_local.write_file(sid, path, b"x")

    links = {
        "abs-out": str(outside),
        "rel-out": "../../../outside.txt",
        "etc-dir": "/etc",
        "in-abs": f"{home}/workspace/target.txt",
        "in-rel": "workspace/target.txt",
        "dir-in": "workspace",
    }
    script = 'cd "$1" && shift && while [ $# -gt 0 ]; do ln -s "$2" "$1"; shift 2; done'
    pairs = [item for name, target in links.items() for item in (name, target)]
    made = await any_local.exec(sid, ["sh", "-c", script, "sh", home, *pairs])
    assert made.exit_code == 0, made.stderr
    await any_local.write_file(sid, f"{home}/workspace/target.txt", b"inside")

    for name in ("abs-out", "rel-out"):
        with pytest.raises(SandboxError):
            await any_local.read_file(sid, f"{home}/{name}")
        with pytest.raises(SandboxError):
            await any_local.write_file(sid, f"{home}/{name}", b"overwritten")
    with pytest.raises(SandboxError):
        await any_local.read_file(sid, f"{home}/etc-dir/passwd")
    with pytest.raises(SandboxError):
        await any_local.write_file(sid, f"{home}/etc-dir/upstream-probe", b"x")
    assert outside.read_text() == "host secret"
    assert not Path("/etc/upstream-probe").exists()

    for name in ("in-abs", "in-rel", "dir-in/target.txt"):
        assert await any_local.read_file(sid, f"{home}/{name}") == b"inside"


async def test_reading_a_fifo_does_not_hang(
    any_local: LocalSandboxProvider, files_box: SandboxInfo
) -> None:
    sid = files_box.sandbox_id
    assert (await any_local.exec(sid, ["mkfifo", "fifo"])).exit_code == 0
    with pytest.raises(SandboxError, match="regular file"):
        await asyncio.wait_for(any_local.read_file(sid, f"{files_box.workdir}/fifo"), 5)


async def test_invalid_ids_are_rejected(any_local: LocalSandboxProvider) -> None:
    for bad in ("", "../x", ".hidden", "a/b", "x" * 65, "-flag", "sp ace"):
        with pytest.raises(ValueError):
            await any_local.create(SandboxSpec(bad))
        with pytest.raises(ValueError):
            await any_local.get(bad)
    with pytest.raises(ValueError):
        await any_local.create(SandboxSpec("ok", env={"BAD NAME": "x"}))


# -- unsafe mode and availability ------------------------------------------------------------


def _hide_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which: Callable[[str], str | None] = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "bwrap" else real_which(name))


async def test_missing_bwrap_is_reported_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _hide_bwrap(monkeypatch)
    with pytest.raises(SandboxUnavailable) as raised:
        LocalSandboxProvider(tmp_path)
    assert str(raised.value) == BWRAP_MISSING
    assert "apt-get install bubblewrap" in str(raised.value)
    assert "UPSTREAM_UNSAFE_LOCAL_SANDBOX=1" in str(raised.value)

    with caplog.at_level(logging.WARNING, logger=local.__name__):
        provider = LocalSandboxProvider(tmp_path, unsafe=True)
    assert any("UNSAFE" in r.getMessage() for r in caplog.records)
    info = await provider.create(SandboxSpec("plain"))
    try:
        assert info.home == str(tmp_path.resolve() / "plain" / "home")
        result = await provider.exec("plain", ["sh", "-c", 'echo "$HOME"'])
        assert result.stdout.strip() == info.home
    finally:
        await provider.delete("plain")


async def test_unsafe_stop_kills_every_process_of_the_sandbox(tmp_path: Path) -> None:
    provider = LocalSandboxProvider(tmp_path, unsafe=True)
    info = await provider.create(SandboxSpec("plain"))
    try:
        handle = await provider.start_process(
            "plain", ["sleep", "600"], log_path=f"{info.home}/l", exit_path=f"{info.home}/e"
        )
        script = "sleep 600 >/dev/null 2>&1 & echo $!; setsid sleep 600 >/dev/null 2>&1 & echo $!"
        leftovers = await provider.exec("plain", ["sh", "-c", script], timeout=10)
        pids = [handle.pid, *map(int, leftovers.stdout.split())]
        assert len(pids) == 3
        for pid in pids:
            assert await pid_alive(provider, "plain", pid)
        await provider.stop("plain")
        for pid in pids:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z"
    finally:
        await provider.delete("plain")


def test_registry_builds_the_configured_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, sandbox_provider="local", unsafe_local_sandbox=True)
    provider = build_provider(settings)
    assert isinstance(provider, LocalSandboxProvider)
    assert provider.name == "local"
    assert settings.sandboxes_dir.is_dir()

    with pytest.raises(SandboxUnavailable, match="daytona provider is not available yet"):
        build_provider(Settings(data_dir=tmp_path, sandbox_provider="daytona"))

    _hide_bwrap(monkeypatch)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        build_provider(Settings(data_dir=tmp_path, sandbox_provider="local"))


async def test_exec_does_not_wait_for_background_processes_holding_its_output(
    any_local: LocalSandboxProvider, files_box: SandboxInfo
) -> None:
    sid = files_box.sandbox_id
    started = time.monotonic()
    result = await any_local.exec(sid, ["sh", "-c", "sleep 60 & echo done"], timeout=30)
    assert time.monotonic() - started < 10
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "done\n", False)

    # Also when the holder left the process group, so the timeout kill cannot reach it.
    started = time.monotonic()
    result = await any_local.exec(sid, ["sh", "-c", "setsid sleep 60 & sleep 60"], timeout=1)
    assert time.monotonic() - started < 10
    assert (result.exit_code, result.timed_out) == (124, True)
