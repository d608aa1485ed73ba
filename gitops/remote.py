"""Asking a remote about itself with `git ls-remote`: reachability, default branch, branches.

Credentials for a private HTTPS remote reach git through a `credential-store` helper reading a
file in a private temporary directory, configured through `GIT_CONFIG_*` variables: never on
the command line (visible in the process list) or in the URL (echoed in git's messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from gitops.credentials import GitCredentials

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


@dataclass(frozen=True)
class RemoteBranch:
    name: str
    sha: str


@contextlib.asynccontextmanager
async def _credential_env(
    url: str, credentials: GitCredentials | None
) -> AsyncIterator[dict[str, str]]:
    """git's environment, with a credential helper for `url`'s host when credentials are given.

    Only http(s) remotes take them; for anything else they are ignored rather than offered to
    a transport that would not use them."""
    parts = urlsplit(url)
    if credentials is None or parts.scheme not in ("http", "https") or not parts.netloc:
        yield dict(_GIT_ENV)
        return
    directory = tempfile.mkdtemp(prefix="git-cred-")  # mode 0700
    try:
        path = os.path.join(directory, "credentials")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        host = parts.netloc.rpartition("@")[2]
        line = (
            f"{parts.scheme}://{quote(credentials.username, safe='')}:"
            f"{quote(credentials.password, safe='')}@{host}\n"
        )
        with os.fdopen(fd, "w") as handle:
            handle.write(line)
        yield {
            **_GIT_ENV,
            "GIT_CONFIG_COUNT": "2",
            # An empty value first: no helper from any other configuration is asked.
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": "credential.helper",
            "GIT_CONFIG_VALUE_1": f"store --file={shlex.quote(path)}",
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _ls_remote(
    args: list[str], timeout: float, url: str, credentials: GitCredentials | None = None
) -> str:
    async with _credential_env(url, credentials) as env:
        process = await asyncio.create_subprocess_exec(
            "git",
            "ls-remote",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
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
        if credentials is not None and credentials.password:
            message = message.replace(credentials.password, "***")
        lines = [line for line in message.splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith("fatal:")]
        detail = (fatal or lines or [f"exit code {process.returncode}"])[0]
        raise GitRemoteError(f"repository is not reachable: {detail[:500]}")
    return stdout.decode(errors="replace")


async def probe_remote(
    url: str, *, credentials: GitCredentials | None = None, timeout: float = 30.0
) -> RemoteInfo:
    output = await _ls_remote(
        ["--symref", "--", url, "HEAD", "refs/heads/*"], timeout, url, credentials
    )
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


async def existing_branches(
    url: str,
    *branches: str,
    credentials: GitCredentials | None = None,
    timeout: float = 30.0,
) -> set[str]:
    """Which of `branches` exist on the remote, in one round trip."""
    patterns = [f"refs/heads/{branch}" for branch in branches]
    output = await _ls_remote(["--heads", "--", url, *patterns], timeout, url, credentials)
    found = {line.split("\trefs/heads/", 1)[1] for line in output.splitlines() if "\t" in line}
    return found & set(branches)


async def remote_branches(
    url: str, *, credentials: GitCredentials | None = None, timeout: float = 30.0
) -> list[RemoteBranch]:
    """Every branch on the remote with the commit it points at, sorted by name."""
    output = await _ls_remote(["--heads", "--", url], timeout, url, credentials)
    found = []
    for line in output.splitlines():
        sha, sep, ref = line.partition("\trefs/heads/")
        if sep and ref:
            found.append(RemoteBranch(name=ref, sha=sha))
    return sorted(found, key=lambda branch: branch.name)
