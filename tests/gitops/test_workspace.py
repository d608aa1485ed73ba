from __future__ import annotations

import os
import pickle
import stat
import subprocess
import time

import pytest

from gitops.credentials import GitCredentials
from gitops.errors import (
    GitAuthError,
    GitConflict,
    GitOpError,
    InvalidGitInput,
    TransientGitError,
    scrub_urls,
)
from gitops.push import push_branch
from gitops.workspace import (
    SandboxRepo,
    check_branch,
    check_revision,
    check_tag,
    credential_line,
    last_error_line,
)
from sandboxes.base import ExecResult
from tests.fakes.git_http import GitRequest
from tests.gitops.conftest import BASE, BRANCH, Workspace

# -- pure parts -----------------------------------------------------------------------------


def test_credentials_repr_hides_the_token() -> None:
    credentials = GitCredentials("x-access-token", "ghp_supersecret")
    assert "ghp_supersecret" not in repr(credentials)
    assert "ghp_supersecret" not in str(credentials)
    assert "x-access-token" in repr(credentials)


def test_credential_line() -> None:
    credentials = GitCredentials("x-access-token", "t:o/k@e n%")
    assert credential_line("https://github.com/o/r.git", credentials) == (
        "https://x-access-token:t%3Ao%2Fk%40e%20n%25@github.com"
    )
    assert credential_line("http://127.0.0.1:8080/o/r.git", credentials) == (
        "http://x-access-token:t%3Ao%2Fk%40e%20n%25@127.0.0.1:8080"
    )
    # The origin only: any user in the URL is replaced, a path is never stored.
    assert credential_line("https://someone@example.com:444/x", credentials) == (
        "https://x-access-token:t%3Ao%2Fk%40e%20n%25@example.com:444"
    )
    for url in ("git@github.com:o/r.git", "ssh://git@host/r", "/srv/repo.git", "file:///x"):
        assert credential_line(url, credentials) is None
    assert credential_line("https://github.com/o/r.git", None) is None


NAMES = [
    "main", "feature/x", "v1.0", "release/2024-01", "a-b_c", "ünï", "x@y", "HEAD",
    "-x", "a..b", "a.lock", "a/.b", ".a", "a/", "/a", "a//b", "a.", "@", "a@{1}", "a b",
    "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a\tb", "a\x7f", "",
]  # fmt: skip


def _git_accepts_tag(name: str) -> bool:
    result = subprocess.run(
        ["git", "check-ref-format", f"refs/tags/{name}"], capture_output=True, check=False
    )
    return result.returncode == 0


@pytest.mark.parametrize("name", NAMES)
def test_tag_names_follow_check_ref_format(name: str) -> None:
    # Stricter than git on two names only: a leading '-' (argv would take it for an option)
    # and '@' (which git reads as HEAD wherever a revision goes).
    expected = _git_accepts_tag(name) and not name.startswith("-") and name != "@"
    try:
        check_tag(name)
        accepted = True
    except InvalidGitInput:
        accepted = False
    assert accepted == expected


def test_revision_and_branch_checks() -> None:
    for good in ("HEAD", "abc1234", "A" * 40, "main", "origin/main", "v1.0", "0" * 64):
        assert check_revision(good) == good
    for bad in ("", "-x", "--all", "HEAD~1", "a..b", "main^", "@{-1}", "a:b", "x" * 201, "a b"):
        with pytest.raises(InvalidGitInput):
            check_revision(bad)
    assert check_branch("feature/x") == "feature/x"
    with pytest.raises(InvalidGitInput, match="invalid base branch"):
        check_branch("HEAD", "base branch")


def test_urls_lose_their_credentials_in_messages() -> None:
    text = "fatal: unable to access 'https://x-access-token:ghp_abc@github.com/o/r.git/': 403"
    assert scrub_urls(text) == "fatal: unable to access 'https://***@github.com/o/r.git/': 403"
    error = GitOpError(text)
    assert "ghp_abc" not in error.message and "ghp_abc" not in str(error)
    conflict = GitConflict("conflicts in 1 file: a", ["a"])
    copy = pickle.loads(pickle.dumps(conflict))
    assert (type(copy), copy.message, copy.files) == (GitConflict, conflict.message, ["a"])


def test_last_error_line() -> None:
    stderr = (
        "hint: something\nremote: Counting objects: 3\nerror: first problem\n"
        "fatal: the real problem\nhint: more hints\n"
    )
    assert last_error_line(stderr) == "fatal: the real problem"
    assert last_error_line("just one line\n") == "just one line"
    assert last_error_line("") == ""


class _NoProvider:
    name = "none"


def _repo(token: str = "ghp_0123456789") -> SandboxRepo:
    return SandboxRepo(
        _NoProvider(),  # type: ignore[arg-type]
        "s",
        workdir="/home/agent/workspace",
        home="/home/agent",
        credentials=GitCredentials("x-access-token", token),
    )


_ACCESS = "fatal: unable to access 'https://h/o/r.git/': "
STDERR_KINDS: list[tuple[str, type[GitOpError]]] = [
    ("fatal: Authentication failed for 'http://h/o/r.git/'", GitAuthError),
    (_ACCESS + "The requested URL returned error: 403", GitAuthError),
    ("fatal: could not read Username for 'https://h': terminal prompts disabled", GitAuthError),
    (_ACCESS + "Could not resolve host: h", TransientGitError),
    (_ACCESS + "Failed to connect to h port 443: Connection refused", TransientGitError),
    (
        "error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502",
        TransientGitError,
    ),
    (_ACCESS + "The requested URL returned error: 503", TransientGitError),
    ("fetch-pack: unexpected disconnect while reading sideband packet", TransientGitError),
    ("fatal: early EOF\nfatal: index-pack failed", TransientGitError),
    ("fatal: 'origin' does not appear to be a git repository", GitOpError),
    ("fatal: couldn't find remote ref refs/heads/x", GitOpError),
]


@pytest.mark.parametrize(("stderr", "kind"), STDERR_KINDS)
def test_errors_are_mapped_from_stderr(stderr: str, kind: type[GitOpError]) -> None:
    error = _repo().error_for(ExecResult(128, "", stderr + "\n"), ("fetch", "origin"))
    assert type(error) is kind
    if kind is GitOpError:
        assert error.message.startswith("git fetch failed: fatal:")


def test_timeouts_are_transient_and_messages_never_carry_the_token() -> None:
    repo = _repo("ghp_sekrit_value")
    timed_out = repo.error_for(ExecResult(124, "", "", timed_out=True), ("push",), timeout=30)
    assert isinstance(timed_out, TransientGitError)
    assert timed_out.message == "git push timed out after 30 s; try again"
    leaked = ExecResult(1, "", "fatal: bad thing ghp_sekrit_value and ghp_sekrit_value\n")
    message = repo.error_for(leaked, ("push",)).message
    assert "ghp_sekrit_value" not in message and "***" in message


# -- against a real sandbox and remote ------------------------------------------------------


async def test_the_credential_file_exists_only_during_the_command(workspace: Workspace) -> None:
    seen: list[tuple[str, int, bytes]] = []
    directory = workspace.host_home / ".upstream-git"

    def look(request: GitRequest) -> None:
        for path in directory.glob("cred-*"):
            seen.append((path.name, stat.S_IMODE(path.stat().st_mode), path.read_bytes()))

    workspace.server.on_request = look
    try:
        await workspace.repo.git("fetch", "origin", network=True)
    finally:
        workspace.server.on_request = None
    assert seen, "no credential file while git talked to the remote"
    assert {mode for _, mode, _ in seen} == {0o600}
    port = workspace.server.url.rsplit(":", 1)[1]
    # As written; git's `store` rewrites it in its own spelling once the token worked.
    assert seen[0][2] == f"http://x-access-token:{workspace.token}@127.0.0.1:{port}\n".encode()
    assert workspace.credential_files() == []


async def test_the_credential_file_is_removed_after_a_timeout(workspace: Workspace) -> None:
    def stall(request: GitRequest) -> None:
        time.sleep(2.5)

    workspace.server.on_request = stall
    try:
        with pytest.raises(TransientGitError, match="timed out"):
            await workspace.repo.git("ls-remote", "origin", network=True, timeout=1.0)
    finally:
        workspace.server.on_request = None
    assert workspace.credential_files() == []


async def test_stale_credential_files_of_a_dead_worker_are_swept(workspace: Workspace) -> None:
    directory = workspace.host_home / ".upstream-git"
    directory.mkdir(exist_ok=True)
    stale, fresh = directory / "cred-stale", directory / "cred-fresh"
    for path in (stale, fresh):
        path.write_text("http://u:p@h\n")
    three_hours_ago = time.time() - 3 * 3600
    os.utime(stale, (three_hours_ago, three_hours_ago))
    await workspace.repo.git("ls-remote", "origin", network=True)
    # A fresh one may belong to a command running right now.
    assert workspace.credential_files() == ["cred-fresh"]


async def test_helpers_and_hooks_of_the_checkout_do_not_run_with_credentials(
    workspace: Workspace,
) -> None:
    marker = f"{workspace.info.home}/ran"
    script = f'#!/bin/sh\necho "$0" >> {marker}\ncat >/dev/null\n'
    await workspace.provider.write_file(
        workspace.info.sandbox_id, f"{workspace.info.home}/helper.sh", script.encode(), mode=0o755
    )
    await workspace.git("config", "credential.helper", f"!{workspace.info.home}/helper.sh")
    hook = f"{workspace.info.workdir}/.git/hooks/pre-push"
    await workspace.provider.write_file(
        workspace.info.sandbox_id, hook, script.encode(), mode=0o755
    )
    await workspace.commit({"a.txt": "1\n"})
    result = await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert result.status == "pushed"
    assert not (workspace.host_home / "ran").exists()


async def test_no_credentials_means_no_helper_at_all(workspace: Workspace) -> None:
    anonymous = SandboxRepo(
        workspace.provider,
        workspace.info.sandbox_id,
        workdir=workspace.info.workdir,
        home=workspace.info.home,
    )
    # Someone else's helper in the checkout is not consulted either.
    await workspace.git("config", "credential.helper", "store")
    home_store = workspace.host_home / ".git-credentials"
    port = workspace.server.url.rsplit(":", 1)[1]
    home_store.write_text(f"http://x:{workspace.token}@127.0.0.1:{port}\n")
    with pytest.raises(GitAuthError):
        await anonymous.git("ls-remote", "origin", network=True)


async def test_a_command_that_fails_locally_is_a_plain_error(workspace: Workspace) -> None:
    with pytest.raises(GitOpError) as caught:
        await workspace.repo.git("rev-parse", "--verify", "no-such-ref")
    assert type(caught.value) is GitOpError
    assert caught.value.message.startswith("git rev-parse failed")
    result = await workspace.repo.git("rev-parse", "--verify", "no-such-ref", check=False)
    assert result.exit_code != 0
