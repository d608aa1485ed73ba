"""Asking a remote about itself with `git ls-remote`: reachability, default branch, branches."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

# Never prompt (a prompt would hang the request), and only the plain transports: `ext::`
# would run an arbitrary command on this host.
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/false",
    "SSH_ASKPASS": "/bin/false",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=15",
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
}
_SYMREF_HEAD = re.compile(r"^ref: refs/heads/(?P<branch>\S+)\tHEAD$", re.MULTILINE)
_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")


class GitRemoteError(Exception):
    """The remote could not be read; the message is safe to show to the user."""


@dataclass(frozen=True)
class RemoteInfo:
    default_branch: str
    branches: tuple[str, ...]


async def _ls_remote(args: list[str], timeout: float) -> str:
    process = await asyncio.create_subprocess_exec(
        "git",
        "ls-remote",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_GIT_ENV,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise GitRemoteError(f"git ls-remote timed out after {timeout:.0f} s") from None
    if process.returncode != 0:
        message = _CREDENTIALS_IN_URL.sub(r"\1***@", stderr.decode(errors="replace").strip())
        lines = [line for line in message.splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith("fatal:")]
        detail = (fatal or lines or [f"exit code {process.returncode}"])[0]
        raise GitRemoteError(f"repository is not reachable: {detail[:500]}")
    return stdout.decode(errors="replace")


async def probe_remote(url: str, *, timeout: float = 30.0) -> RemoteInfo:
    output = await _ls_remote(["--symref", "--", url, "HEAD", "refs/heads/*"], timeout)
    branches = tuple(
        line.split("\trefs/heads/", 1)[1]
        for line in output.splitlines()
        if "\trefs/heads/" in line and not line.startswith("ref:")
    )
    if not branches:
        raise GitRemoteError("repository has no branches; push at least one commit first")
    match = _SYMREF_HEAD.search(output)
    default = match.group("branch") if match else None
    if default is None or default not in branches:
        default = next((b for b in ("main", "master") if b in branches), branches[0])
    return RemoteInfo(default_branch=default, branches=branches)


async def existing_branches(url: str, *branches: str, timeout: float = 30.0) -> set[str]:
    """Which of `branches` exist on the remote, in one round trip."""
    patterns = [f"refs/heads/{branch}" for branch in branches]
    output = await _ls_remote(["--heads", "--", url, *patterns], timeout)
    found = {line.split("\trefs/heads/", 1)[1] for line in output.splitlines() if "\t" in line}
    return found & set(branches)
