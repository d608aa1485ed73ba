from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fakes.git_http import GitHttpServer, GitRequest

TOKEN = "ghp_alicetoken"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "repos") as server:
        server.add_token(TOKEN, "alice")
        yield server


class Client:
    """The real git CLI with a private HOME and, optionally, a credential-store file."""

    def __init__(self, tmp_path: Path, server: GitHttpServer) -> None:
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.store = self.home / "credentials"
        self.server = server

    def remember(self, token: str) -> None:
        port = self.server.url.rsplit(":", 1)[1]
        self.store.write_text(f"http://x-access-token:{token}@127.0.0.1:{port}\n")

    def git(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Client",
            "GIT_AUTHOR_EMAIL": "client@example.invalid",
            "GIT_COMMITTER_NAME": "Client",
            "GIT_COMMITTER_EMAIL": "client@example.invalid",
        }
        helper = ["-c", "credential.helper=", "-c", f"credential.helper=store --file={self.store}"]
        return subprocess.run(
            ["git", *helper, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        result = self.git(*args, cwd=cwd)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def client(tmp_path: Path, server: GitHttpServer) -> Client:
    return Client(tmp_path, server)


def _commit(client: Client, work: Path, name: str, content: str | bytes) -> str:
    target = work / name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    client.ok("add", name, cwd=work)
    client.ok("commit", "-q", "-m", f"change {name}", cwd=work)
    return client.ok("rev-parse", "HEAD", cwd=work).strip()


def test_anonymous_clone_of_public_repo(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("alice", "open", files={"a.txt": "A\n"}, private=False)
    assert url == f"{server.url}/alice/open.git" == server.clone_url("alice", "open")
    client.ok("clone", "-q", url, str(tmp_path / "open"))
    assert (tmp_path / "open" / "a.txt").read_text() == "A\n"
    assert all(r.login is None for r in server.requests)
    assert any(r.service == "git-upload-pack" and r.status == 200 for r in server.requests)


def test_private_clone_needs_credentials(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("alice", "app", branches=["develop"])
    failed = client.git("clone", "-q", url, str(tmp_path / "nope"))
    assert failed.returncode != 0
    assert server.requests[-1].status == 401

    client.remember(TOKEN)
    client.ok("clone", "-q", url, str(tmp_path / "app"))
    work = tmp_path / "app"
    assert (work / "README.md").read_text() == "hello\n"
    assert client.ok("symbolic-ref", "--short", "HEAD", cwd=work).strip() == "main"
    remote = client.ok("branch", "-r", cwd=work)
    assert "origin/develop" in remote
    assert server.requests[-1].login == "alice"


def test_push_with_token_lands(server: GitHttpServer, client: Client, tmp_path: Path) -> None:
    url = server.create_repo("alice", "app")
    before = server.ref_sha("alice", "app", "refs/heads/main")
    client.remember(TOKEN)
    work = tmp_path / "app"
    client.ok("clone", "-q", url, str(work))
    sha = _commit(client, work, "new.txt", "new\n")
    seen: list[GitRequest] = []
    server.on_request = seen.append
    client.ok("push", "-q", "origin", "main", cwd=work)
    client.ok("push", "-q", "origin", "main:refs/heads/feature", cwd=work)
    assert before != sha
    assert server.ref_sha("alice", "app", "refs/heads/main") == sha
    assert server.ref_sha("alice", "app", "refs/heads/feature") == sha
    assert server.ref_sha("alice", "app", "refs/heads/missing") is None
    pushes = [r for r in seen if r.method == "POST" and r.service == "git-receive-pack"]
    assert [r.status for r in pushes] == [200, 200]
    assert all(r.login == "alice" for r in pushes)


def test_push_with_wrong_or_revoked_token_is_refused(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("alice", "app", private=False)
    before = server.ref_sha("alice", "app", "refs/heads/main")
    work = tmp_path / "app"
    client.ok("clone", "-q", url, str(work))
    _commit(client, work, "x.txt", "x\n")

    anonymous = client.git("push", "origin", "main", cwd=work)
    assert anonymous.returncode != 0

    client.remember("ghp_wrong")
    wrong = client.git("push", "origin", "main", cwd=work)
    assert wrong.returncode != 0
    assert "Authentication failed" in wrong.stderr or "401" in wrong.stderr

    server.add_token("ghp_other", "alice")
    server.revoke_token("ghp_other")
    client.remember("ghp_other")
    assert client.git("push", "origin", "main", cwd=work).returncode != 0
    assert server.ref_sha("alice", "app", "refs/heads/main") == before
    assert {r.status for r in server.requests if r.service == "git-receive-pack"} == {401}


def test_user_without_access_gets_not_found(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("bob", "secret")
    client.remember(TOKEN)
    result = client.git("clone", "-q", url, str(tmp_path / "secret"))
    assert result.returncode != 0
    assert "Repository not found" in result.stderr
    assert server.requests[-1].status == 404

    server.grant("bob", "secret", "alice")
    client.ok("clone", "-q", url, str(tmp_path / "secret"))


def test_push_to_readable_public_repo_without_grant_is_forbidden(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("bob", "open", private=False)
    client.remember(TOKEN)
    work = tmp_path / "open"
    client.ok("clone", "-q", url, str(work))
    _commit(client, work, "x.txt", "x\n")
    result = client.git("push", "origin", "main", cwd=work)
    assert result.returncode != 0
    assert "Permission to bob/open.git denied to alice" in result.stderr


def test_fail_next_fails_exactly_the_next_push(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("alice", "app")
    client.remember(TOKEN)
    work = tmp_path / "app"
    client.ok("clone", "-q", url, str(work))
    sha = _commit(client, work, "x.txt", "x\n")

    server.fail_next(1, status=503)
    failed = client.git("push", "origin", "main", cwd=work)
    assert failed.returncode != 0
    assert "503" in failed.stderr
    assert server.ref_sha("alice", "app", "refs/heads/main") != sha
    assert [r.status for r in server.requests if r.status == 503] == [503]

    client.ok("push", "-q", "origin", "main", cwd=work)
    assert server.ref_sha("alice", "app", "refs/heads/main") == sha
    # Fetches were never affected.
    client.ok("fetch", "-q", "origin", cwd=work)


def test_push_above_post_buffer_uses_chunked_body(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("alice", "app")
    client.remember(TOKEN)
    work = tmp_path / "app"
    client.ok("clone", "-q", url, str(work))
    sha = _commit(client, work, "blob.bin", os.urandom(2 * 1024 * 1024))
    client.ok("push", "-q", "origin", "main", cwd=work)
    assert server.ref_sha("alice", "app", "refs/heads/main") == sha

    again = tmp_path / "again"
    client.ok("clone", "-q", url, str(again))
    assert (again / "blob.bin").read_bytes() == (work / "blob.bin").read_bytes()


def test_commit_to_moves_branches(server: GitHttpServer, client: Client, tmp_path: Path) -> None:
    url = server.create_repo("alice", "app", default_branch="trunk", files={"a/b.txt": "1\n"})
    first = server.ref_sha("alice", "app", "refs/heads/trunk")
    assert first is not None
    sha = server.commit_to("alice", "app", "trunk", {"a/c.txt": "2\n"}, message="more")
    assert server.ref_sha("alice", "app", "refs/heads/trunk") == sha != first
    side = server.commit_to("alice", "app", "side", {"a/b.txt": None})
    assert server.ref_sha("alice", "app", "refs/heads/side") == side
    assert server.ref_sha("alice", "app", "refs/heads/trunk") == sha

    client.remember(TOKEN)
    work = tmp_path / "app"
    client.ok("clone", "-q", url, str(work))
    assert client.ok("log", "--format=%s", cwd=work).splitlines() == ["more", "initial commit"]
    assert (work / "a" / "b.txt").read_text() == "1\n"
    assert (work / "a" / "c.txt").read_text() == "2\n"
    client.ok("checkout", "-q", "side", cwd=work)
    assert not (work / "a" / "b.txt").exists()
    assert server.repo_path("alice", "app") == tmp_path / "repos" / "alice" / "app.git"


def test_survives_a_client_that_hangs_up_mid_body(
    server: GitHttpServer, client: Client, tmp_path: Path
) -> None:
    url = server.create_repo("alice", "open", private=False)
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /alice/open.git/git-upload-pack HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nContent-Length: 1000\r\n\r\npartial"
        )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /alice/open.git/git-upload-pack HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort"
        )
    clones = [tmp_path / f"c{i}" for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda d: client.git("clone", "-q", url, str(d)), clones))
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
