"""A branch's checkout in a real sandbox, cloned over smart HTTP with a token.

Sandboxes are bubblewrap ones where this host can run them (root, bwrap installed), plain
processes otherwise; the remote is `tests.fakes.git_http`, the real `git http-backend` behind
GitHub-style Basic auth.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops.clone import clone
from gitops.credentials import GitCredentials
from gitops.workspace import CREDENTIALS_DIR, SandboxRepo
from sandboxes.base import SandboxInfo, SandboxSpec
from sandboxes.local import LocalSandboxProvider
from tests.fakes.git_http import GitHttpServer, GitRequest

OWNER = "alice"
NAME = "app"
BASE = "main"
BRANCH = "feature"
IDENTITY = ("Upstream Agent", "agent@upstream.invalid")
FILES = {
    "README.md": "hello\n",
    "src/app.py": "def main():\n    print('hi')\n",
    "docs/guide.md": "one\ntwo\nthree\n",
}


def _bwrap_usable() -> bool:
    return shutil.which("bwrap") is not None and os.geteuid() == 0


@pytest.fixture
def token() -> str:
    # Distinctive, so that a search of any text or process list for it cannot miss.
    return f"ghp_{uuid.uuid4().hex}SECRET"


@pytest.fixture
def server(tmp_path: Path, token: str) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "remote") as server:
        server.add_token(token, OWNER)
        yield server


@pytest.fixture
def provider(tmp_path: Path) -> LocalSandboxProvider:
    return LocalSandboxProvider(tmp_path / "sandboxes", unsafe=not _bwrap_usable())


@pytest.fixture
async def sandbox(provider: LocalSandboxProvider) -> AsyncIterator[SandboxInfo]:
    info = await provider.create(SandboxSpec(f"git-{uuid.uuid4().hex[:12]}"))
    yield info
    await provider.delete(info.sandbox_id)


@dataclass
class Workspace:
    """A cloned checkout on branch `feature` of alice/app (base `main`)."""

    provider: LocalSandboxProvider
    info: SandboxInfo
    repo: SandboxRepo
    server: GitHttpServer
    url: str
    host_home: Path
    token: str

    @property
    def host_workdir(self) -> Path:
        return self.host_home / "workspace"

    async def sh(self, *argv: str, cwd: str | None = None, ok: bool = True) -> str:
        result = await self.provider.exec(
            self.info.sandbox_id, list(argv), cwd=cwd or self.info.workdir, timeout=60
        )
        if ok:
            assert result.exit_code == 0, f"{argv}: {result.stderr}"
        return result.stdout

    async def git(self, *args: str) -> str:
        return (await self.sh("git", *args)).strip()

    async def write(self, path: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else content
        await self.provider.write_file(
            self.info.sandbox_id, f"{self.info.workdir}/{path}", data, mode=0o644
        )

    async def commit(self, files: dict[str, str | bytes | None], message: str = "change") -> str:
        for path, content in files.items():
            if content is None:
                await self.sh("rm", "-f", "--", path)
            else:
                await self.write(path, content)
        await self.git("add", "--all")
        await self.git("commit", "--quiet", "-m", message)
        return await self.git("rev-parse", "HEAD")

    def remote_sha(self, ref: str) -> str | None:
        return self.server.ref_sha(OWNER, NAME, ref)

    def pushes(self) -> list[GitRequest]:
        return [r for r in self.server.requests if r.service == "git-receive-pack"]

    def credential_files(self) -> list[str]:
        directory = self.host_home / CREDENTIALS_DIR
        return sorted(p.name for p in directory.glob("cred-*")) if directory.exists() else []


def host_home(info: SandboxInfo, tmp_path: Path) -> Path:
    # LocalSandboxProvider keeps a sandbox's home at <root>/<sandbox_id>/home.
    return tmp_path / "sandboxes" / info.sandbox_id / "home"


@pytest.fixture
async def workspace(
    provider: LocalSandboxProvider,
    sandbox: SandboxInfo,
    server: GitHttpServer,
    token: str,
    tmp_path: Path,
) -> Workspace:
    url = server.create_repo(OWNER, NAME, default_branch=BASE, files=FILES, branches=["develop"])
    repo = SandboxRepo(
        provider,
        sandbox.sandbox_id,
        workdir=sandbox.workdir,
        home=sandbox.home,
        credentials=GitCredentials("x-access-token", token),
    )
    await clone(repo, url, base=BASE, branch=BRANCH, identity=IDENTITY)
    return Workspace(provider, sandbox, repo, server, url, host_home(sandbox, tmp_path), token)


def processes_holding(secret: str) -> list[str]:
    """Host processes whose command line or environment contains `secret`."""
    needle = secret.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{entry}/{part}", "rb") as file:
                    data = file.read()
            except OSError:
                continue
            if needle in data:
                found.append(f"{entry}/{part}: {data[:200]!r}")
    return found
