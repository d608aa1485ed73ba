from __future__ import annotations

import pytest

from gitops.errors import (
    GitAuthError,
    InvalidGitInput,
    ProtectedBranch,
    PushRejected,
    TransientGitError,
)
from gitops.push import push_branch
from tests.fakes.git_http import GitRequest
from tests.gitops.conftest import BASE, BRANCH, NAME, OWNER, Workspace, processes_holding

REF = f"refs/heads/{BRANCH}"


async def test_push_creates_the_remote_branch_and_sets_the_upstream(workspace: Workspace) -> None:
    sha = await workspace.commit({"new.txt": "new\n"}, "add new")
    result = await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert (result.sha, result.status, result.forced) == (sha, "pushed", False)
    assert workspace.remote_sha(REF) == sha
    assert await workspace.git("rev-parse", "--abbrev-ref", "@{upstream}") == f"origin/{BRANCH}"
    assert await workspace.git("rev-parse", f"origin/{BRANCH}") == sha
    assert workspace.credential_files() == []


async def test_a_retried_push_does_not_push_again(workspace: Workspace) -> None:
    sha = await workspace.commit({"new.txt": "new\n"})
    await push_branch(workspace.repo, BRANCH, default_branch=BASE, sha=sha)
    pushes = len(workspace.pushes())
    again = await push_branch(workspace.repo, BRANCH, default_branch=BASE, sha=sha)
    assert (again.sha, again.status, again.forced) == (sha, "up-to-date", False)
    assert len(workspace.pushes()) == pushes
    # Without a sha: HEAD, which is what the remote has.
    assert (await push_branch(workspace.repo, BRANCH, default_branch=BASE)).status == "up-to-date"
    assert len(workspace.pushes()) == pushes


async def test_a_retry_with_an_older_commit_leaves_the_newer_remote_alone(
    workspace: Workspace,
) -> None:
    older = await workspace.commit({"a.txt": "1\n"}, "turn 1")
    await push_branch(workspace.repo, BRANCH, default_branch=BASE, sha=older)
    newer = await workspace.commit({"a.txt": "2\n"}, "turn 2")
    await push_branch(workspace.repo, BRANCH, default_branch=BASE, sha=newer)
    pushes = len(workspace.pushes())
    late = await push_branch(workspace.repo, BRANCH, default_branch=BASE, sha=older)
    assert (late.status, late.sha) == ("up-to-date", newer)
    assert workspace.remote_sha(REF) == newer
    assert len(workspace.pushes()) == pushes


async def test_a_branch_already_on_the_remote_is_up_to_date(workspace: Workspace) -> None:
    # `develop` exists on the remote at the commit the checkout started from.
    await workspace.git("branch", "develop")
    result = await push_branch(workspace.repo, "develop", default_branch=BASE)
    assert result.status == "up-to-date"
    assert workspace.pushes() == []
    assert await workspace.git("rev-parse", "--abbrev-ref", "develop@{upstream}") == (
        "origin/develop"
    )


async def test_the_default_branch_is_refused_before_any_request(workspace: Workspace) -> None:
    await workspace.commit({"new.txt": "new\n"})
    before = len(workspace.server.requests)
    with pytest.raises(ProtectedBranch, match="default branch"):
        await push_branch(workspace.repo, BASE, default_branch=BASE)
    with pytest.raises(ProtectedBranch):
        await push_branch(workspace.repo, BASE, default_branch=BASE, force_with_lease=True)
    assert len(workspace.server.requests) == before


async def test_bad_input_is_refused(workspace: Workspace) -> None:
    with pytest.raises(InvalidGitInput):
        await push_branch(workspace.repo, "bad..name", default_branch=BASE)
    with pytest.raises(InvalidGitInput):
        await push_branch(workspace.repo, BRANCH, default_branch=BASE, sha="--all")
    with pytest.raises(InvalidGitInput, match="unknown commit"):
        await push_branch(workspace.repo, BRANCH, default_branch=BASE, sha="deadbeef" * 5)


async def test_someone_elses_push_makes_ours_a_rejected_non_fast_forward(
    workspace: Workspace,
) -> None:
    await workspace.commit({"a.txt": "1\n"})
    await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    theirs = workspace.server.commit_to(OWNER, NAME, BRANCH, {"theirs.txt": "x\n"})
    await workspace.commit({"a.txt": "2\n"})
    with pytest.raises(PushRejected, match="force_with_lease") as caught:
        await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert "someone else" in caught.value.message
    assert workspace.remote_sha(REF) == theirs


async def test_force_with_lease_overwrites_what_was_fetched(workspace: Workspace) -> None:
    await workspace.commit({"a.txt": "1\n"})
    await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    workspace.server.commit_to(OWNER, NAME, BRANCH, {"theirs.txt": "x\n"})
    ours = await workspace.commit({"a.txt": "2\n"})
    with pytest.raises(PushRejected):
        await push_branch(workspace.repo, BRANCH, default_branch=BASE)  # fetched theirs
    forced = await push_branch(workspace.repo, BRANCH, default_branch=BASE, force_with_lease=True)
    assert (forced.sha, forced.status, forced.forced) == (ours, "pushed", True)
    assert workspace.remote_sha(REF) == ours
    # Retried: the remote already is where we wanted it.
    pushes = len(workspace.pushes())
    again = await push_branch(workspace.repo, BRANCH, default_branch=BASE, force_with_lease=True)
    assert (again.status, again.forced) == ("up-to-date", False)
    assert len(workspace.pushes()) == pushes


async def test_force_with_lease_does_not_clobber_a_push_it_never_saw(
    workspace: Workspace,
) -> None:
    await workspace.commit({"a.txt": "1\n"})
    await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    theirs = workspace.server.commit_to(OWNER, NAME, BRANCH, {"theirs.txt": "x\n"})
    await workspace.git("reset", "--hard", "--quiet", "HEAD~1")  # rewrite our history
    await workspace.commit({"b.txt": "rewritten\n"})
    with pytest.raises(PushRejected, match="since it was last fetched"):
        await push_branch(workspace.repo, BRANCH, default_branch=BASE, force_with_lease=True)
    assert workspace.remote_sha(REF) == theirs


async def test_force_with_lease_expects_no_branch_when_it_never_saw_one(
    workspace: Workspace,
) -> None:
    theirs = workspace.server.commit_to(OWNER, NAME, BRANCH, {"theirs.txt": "x\n"})
    await workspace.commit({"a.txt": "1\n"})
    with pytest.raises(PushRejected):
        await push_branch(workspace.repo, BRANCH, default_branch=BASE, force_with_lease=True)
    assert workspace.remote_sha(REF) == theirs


async def test_force_with_lease_pushes_a_new_branch(workspace: Workspace) -> None:
    sha = await workspace.commit({"a.txt": "1\n"})
    result = await push_branch(workspace.repo, BRANCH, default_branch=BASE, force_with_lease=True)
    assert (result.sha, result.status, result.forced) == (sha, "pushed", False)
    assert workspace.remote_sha(REF) == sha


async def test_a_server_error_is_transient_and_the_retry_succeeds(workspace: Workspace) -> None:
    sha = await workspace.commit({"a.txt": "1\n"})
    workspace.server.fail_next(1, status=503, service="git-receive-pack")
    with pytest.raises(TransientGitError) as caught:
        await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert workspace.token not in caught.value.message
    assert workspace.remote_sha(REF) is None
    assert workspace.credential_files() == []
    result = await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert (result.status, workspace.remote_sha(REF)) == ("pushed", sha)


async def test_an_unreachable_remote_is_transient(workspace: Workspace) -> None:
    await workspace.commit({"a.txt": "1\n"})
    workspace.server.stop()
    with pytest.raises(TransientGitError):
        await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert workspace.credential_files() == []


async def test_the_token_is_in_no_process_list_or_environment_during_a_push(
    workspace: Workspace,
) -> None:
    seen: list[str] = []
    served: list[GitRequest] = []

    def snapshot(request: GitRequest) -> None:
        served.append(request)
        seen.extend(processes_holding(workspace.token))

    await workspace.commit({"a.txt": "1\n"})
    workspace.server.on_request = snapshot
    try:
        await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    finally:
        workspace.server.on_request = None
    assert any(r.service == "git-receive-pack" and r.login == OWNER for r in served)
    assert seen == []


async def test_a_revoked_token_is_an_auth_error_without_the_token(workspace: Workspace) -> None:
    await workspace.commit({"a.txt": "1\n"})
    workspace.server.revoke_token(workspace.token)
    with pytest.raises(GitAuthError) as caught:
        await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert "store a GitHub token" in caught.value.message
    assert workspace.token not in caught.value.message
    assert workspace.token not in repr(caught.value)
    assert workspace.credential_files() == []


async def test_pushing_an_older_commit_to_a_fresh_branch(workspace: Workspace) -> None:
    first = await workspace.commit({"a.txt": "1\n"})
    await workspace.commit({"a.txt": "2\n"})
    result = await push_branch(workspace.repo, "other", default_branch=BASE, sha=first[:10])
    assert (result.sha, result.status) == (first, "pushed")
    assert workspace.remote_sha("refs/heads/other") == first
