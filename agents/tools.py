"""Install pinned agent CLIs from npm into a shared tools directory, once, on first use.

Layout: `<tools_dir>/<sanitised npm name>/<version>/node_modules/...`. A prefix directory exists
only when complete: npm installs into a staging directory beside it, the binary is checked with
`--version`, and only then is the staging directory renamed into place (atomic on one filesystem).
A per-package `fcntl` lock file makes concurrent workers (or coroutines) install it once.

Install scripts must run: Claude Code's `bin/claude.exe` is a ~500-byte stub until its postinstall
hard-links the platform binary over it. We keep the npm-managed bin path (portable across
linux-x64/arm64/musl, unlike the platform package's path) and force scripts on, then prove the
result with `--version`, so a stub never gets renamed into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from agents.base import ToolPackage

Progress = Callable[[str], Awaitable[None]]

_NPM_TIMEOUT_S = 900.0
_VERSION_TIMEOUT_S = 60.0
_HEARTBEAT_S = 15.0
_LOCK_POLL_S = 0.2
_STDERR_TAIL = 4000
_STAGING_PREFIX = ".staging-"


class ToolInstallError(RuntimeError):
    """npm failed, or the installed binary does not run; the message carries npm's output tail."""


def package_dir(tools_dir: Path, package: ToolPackage) -> Path:
    """`<tools_dir>/<sanitised npm name>`, e.g. `anthropic-ai__claude-code`."""
    name = package.npm_name.lstrip("@").replace("/", "__")
    if not name or name.startswith(".") or any(c in name for c in "\\\0"):
        raise ValueError(f"unusable npm package name {package.npm_name!r}")
    return tools_dir / name


def install_prefix(tools_dir: Path, package: ToolPackage) -> Path:
    """Where `package` lives once installed (whether or not it is installed yet)."""
    if not package.version or "/" in package.version or package.version.startswith("."):
        raise ValueError(f"unusable version {package.version!r}")
    return package_dir(tools_dir, package) / package.version


def installed_prefix(tools_dir: Path, package: ToolPackage) -> Path | None:
    """The install prefix if the package is already installed, else None (runs nothing)."""
    prefix = install_prefix(tools_dir, package)
    # The prefix only ever appears by rename after a verified install, so existence suffices;
    # checking the binary too guards against someone deleting files underneath us.
    return prefix if (prefix / package.binary).is_file() else None


async def ensure_installed(
    tools_dir: Path, package: ToolPackage, *, progress: Progress | None = None
) -> Path:
    """Install `package` unless present; returns its prefix. Raises ToolInstallError on failure."""
    found = installed_prefix(tools_dir, package)
    if found is not None:
        return found
    report = progress or _quiet
    parent = package_dir(tools_dir, package)
    parent.mkdir(parents=True, exist_ok=True)
    async with _file_lock(parent / f".{package.version}.lock", package, report):
        found = installed_prefix(tools_dir, package)  # another process may have finished meanwhile
        if found is not None:
            return found
        return await _install(parent, package, report)


async def _quiet(_: str) -> None:
    return None


@contextlib.asynccontextmanager
async def _file_lock(path: Path, package: ToolPackage, report: Progress) -> AsyncIterator[None]:
    # Poll with LOCK_NB instead of blocking in a thread: a blocked thread cannot be cancelled.
    # flock locks belong to the open file description, so two coroutines of one process exclude
    # each other just like two processes do.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    waited = True
                    await report(
                        f"waiting for another install of {package.npm_name} {package.version}…"
                    )
                await asyncio.sleep(_LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


async def _install(parent: Path, package: ToolPackage, report: Progress) -> Path:
    prefix = parent / package.version
    staging = await asyncio.to_thread(_fresh_staging, parent, package.version)
    try:
        await report(f"installing {package.npm_name} {package.version} from npm…")
        started = time.monotonic()
        await _npm_install(staging, package, report, started)
        await _check_version(staging, package)
        if prefix.exists():  # a damaged install (its binary went missing): replace it
            await asyncio.to_thread(_discard, prefix)
        os.rename(staging, prefix)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staging, ignore_errors=True)
        raise
    await report(f"installed in {time.monotonic() - started:.1f} s")
    return prefix


def _fresh_staging(parent: Path, version: str) -> Path:
    # We hold the lock, so leftover staging dirs for this version are from dead installs.
    for stale in parent.glob(f"{_STAGING_PREFIX}{version}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{version}-", dir=parent))
    staging.chmod(0o755)  # mkdtemp makes it 0700; sandboxes may run the tools as another user
    return staging


def _discard(path: Path) -> None:
    # Rename first so that no reader ever sees a half-deleted prefix.
    doomed = path.with_name(f"{_STAGING_PREFIX}{path.name}-discarded-{os.getpid()}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _npm_env() -> dict[str, str]:
    env = dict(os.environ)
    # Override any user/global npmrc that would skip the postinstall (see module docstring).
    env.update(
        npm_config_ignore_scripts="false",
        npm_config_update_notifier="false",
        npm_config_progress="false",
    )
    return env


async def _npm_install(
    staging: Path, package: ToolPackage, report: Progress, started: float
) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ToolInstallError(f"cannot install {package.npm_name}: npm is not on PATH")
    spec = f"{package.npm_name}@{package.version}"
    argv = [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(staging), spec]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=staging,
        env=_npm_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    communicate = asyncio.ensure_future(proc.communicate())
    try:
        while True:
            done, _ = await asyncio.wait({communicate}, timeout=_HEARTBEAT_S)
            if done:
                break
            elapsed = time.monotonic() - started
            if elapsed > _NPM_TIMEOUT_S:
                raise ToolInstallError(f"npm install {spec} timed out after {elapsed:.0f} s")
            await report(f"still installing {spec} ({elapsed:.0f} s)…")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        communicate.cancel()
        with contextlib.suppress(BaseException):
            await proc.wait()
        raise
    stdout, stderr = communicate.result()
    if proc.returncode != 0:
        tail = _tail(stderr or stdout)
        raise ToolInstallError(f"npm install {spec} failed (exit {proc.returncode}):\n{tail}")


async def _check_version(staging: Path, package: ToolPackage) -> None:
    binary = staging / package.binary
    if not binary.is_file():
        raise ToolInstallError(f"{package.npm_name} installed but {package.binary} is missing")
    # A throwaway HOME: some CLIs write config or caches on any start, even for --version.
    with tempfile.TemporaryDirectory(prefix="tool-version-home-") as home:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
        proc = await asyncio.create_subprocess_exec(
            str(binary),
            "--version",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), _VERSION_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ToolInstallError(f"{package.binary} --version did not exit") from None
    text = _tail(output)
    if proc.returncode != 0 or package.version not in text:
        raise ToolInstallError(
            f"{package.binary} --version failed (exit {proc.returncode}); "
            f"did its postinstall script run? Output:\n{text}"
        )


def _tail(data: bytes) -> str:
    return data[-_STDERR_TAIL:].decode("utf-8", "replace").strip()
