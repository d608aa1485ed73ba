from __future__ import annotations

import pytest

from gitops.errors import GitConflict, GitOpError, InvalidGitInput, ProtectedBranch
from gitops.operations import (
    create_tag,
    delete_remote_branch,
    fetch,
    merge_base_into_branch,
    merge_branch_into_base,
    rebase_onto_base,
    rename_branch,
    reset_to,
    working_tree_dirty,
)
from gitops.push import push_branch
from tests.gitops.conftest import BASE, BRANCH, NAME, OWNER, Workspace

BASE_REF = f"refs/heads/{BASE}"


async def _clean_and_idle(workspace: Workspace) -> None:
    """No uncommitted change, no merge or rebase in progress, no leftover worktree."""
    assert await workspace.git("status", "--porcelain") == ""
    git_dir = workspace.host_workdir / ".git"
    for leftover in ("MERGE_HEAD", "rebase-merge", "rebase-apply", "REBASE_HEAD"):
        assert not (git_dir / leftover).exists(), leftover
    worktrees = await workspace.git("worktree", "list", "--porcelain")
    assert worktrees.count("worktree ") == 1


# -- fetch and state ------------------------------------------------------------------------


async def test_fetch_updates_remote_tracking_branches(workspace: Workspace) -> None:
    moved = workspace.server.commit_to(OWNER, NAME, "develop", {"d.txt": "d\n"})
    await fetch(workspace.repo, "develop", BASE)
    assert await workspace.git("rev-parse", "origin/develop") == moved
    with pytest.raises(InvalidGitInput, match="nope"):
        await fetch(workspace.repo, "nope")
    with pytest.raises(InvalidGitInput):
        await fetch(workspace.repo, "-x")
    newer = workspace.server.commit_to(OWNER, NAME, "develop", {"d.txt": "e\n"})
    await fetch(workspace.repo)
    assert await workspace.git("rev-parse", "origin/develop") == newer


async def test_working_tree_dirty(workspace: Workspace) -> None:
    assert not await working_tree_dirty(workspace.repo)
    await workspace.write("untracked.txt", "x")
    assert await working_tree_dirty(workspace.repo)
    await workspace.sh("rm", "untracked.txt")
    await workspace.write("README.md", "changed\n")
    assert await working_tree_dirty(workspace.repo)
    await workspace.git("checkout", "--", "README.md")
    assert not await working_tree_dirty(workspace.repo)


# -- merging the base into the branch -------------------------------------------------------


async def test_merge_base_into_branch_fast_forwards_then_is_up_to_date(
    workspace: Workspace,
) -> None:
    upstream = workspace.server.commit_to(OWNER, NAME, BASE, {"up.txt": "u\n"})
    result = await merge_base_into_branch(workspace.repo, BASE)
    assert (result.status, result.sha) == ("fast-forward", upstream)
    assert await workspace.git("rev-parse", "HEAD") == upstream
    again = await merge_base_into_branch(workspace.repo, BASE)
    assert (again.status, again.sha) == ("up-to-date", upstream)


async def test_merge_base_into_branch_makes_a_merge_commit(workspace: Workspace) -> None:
    ours = await workspace.commit({"ours.txt": "o\n"})
    upstream = workspace.server.commit_to(OWNER, NAME, BASE, {"up.txt": "u\n"})
    result = await merge_base_into_branch(workspace.repo, BASE)
    assert result.status == "merged"
    assert await workspace.git("rev-parse", "HEAD") == result.sha
    assert (await workspace.git("rev-parse", "HEAD^1", "HEAD^2")).split() == [ours, upstream]
    assert await workspace.git("log", "-1", "--format=%s") == f"Merge branch '{BASE}' into {BRANCH}"
    await _clean_and_idle(workspace)
    # Retried after it succeeded: nothing more to do.
    assert (await merge_base_into_branch(workspace.repo, BASE)).status == "up-to-date"


async def test_merge_base_into_branch_conflict_is_aborted(workspace: Workspace) -> None:
    ours = await workspace.commit({"README.md": "ours\n", "docs/guide.md": "ours\n"})
    workspace.server.commit_to(
        OWNER, NAME, BASE, {"README.md": "theirs\n", "docs/guide.md": "theirs\n"}
    )
    with pytest.raises(GitConflict) as caught:
        await merge_base_into_branch(workspace.repo, BASE)
    assert caught.value.files == ["README.md", "docs/guide.md"]
    assert caught.value.message == (
        f"merging {BASE} into {BRANCH} conflicts in 2 files: README.md, docs/guide.md"
    )
    assert await workspace.git("rev-parse", "HEAD") == ours
    await _clean_and_idle(workspace)


async def test_merge_refuses_a_dirty_working_tree(workspace: Workspace) -> None:
    workspace.server.commit_to(OWNER, NAME, BASE, {"up.txt": "u\n"})
    await workspace.write("README.md", "uncommitted\n")
    with pytest.raises(GitOpError, match="uncommitted changes"):
        await merge_base_into_branch(workspace.repo, BASE)
    with pytest.raises(GitOpError, match="uncommitted changes"):
        await rebase_onto_base(workspace.repo, BASE)
    assert (workspace.host_workdir / "README.md").read_text() == "uncommitted\n"


async def test_a_merge_left_behind_by_a_killed_attempt_is_cleared(workspace: Workspace) -> None:
    await workspace.commit({"README.md": "ours\n"})
    workspace.server.commit_to(OWNER, NAME, BASE, {"README.md": "theirs\n", "up.txt": "u\n"})
    await fetch(workspace.repo, BASE)
    # The worker died after git stopped on the conflict and before the abort.
    await workspace.sh("git", "merge", f"origin/{BASE}", ok=False)
    assert (workspace.host_workdir / ".git" / "MERGE_HEAD").exists()
    with pytest.raises(GitConflict):
        await merge_base_into_branch(workspace.repo, BASE)
    await _clean_and_idle(workspace)


async def test_someone_elses_merge_in_progress_is_not_aborted(workspace: Workspace) -> None:
    await workspace.commit({"README.md": "ours\n"}, "ours")
    other = workspace.server.commit_to(OWNER, NAME, "develop", {"README.md": "develop\n"})
    await fetch(workspace.repo, "develop")
    await workspace.sh("git", "merge", other, ok=False)
    with pytest.raises(GitOpError, match="merge is in progress"):
        await merge_base_into_branch(workspace.repo, BASE)
    assert (workspace.host_workdir / ".git" / "MERGE_HEAD").exists()


# -- merging the branch into the base -------------------------------------------------------


async def test_merge_branch_into_base_pushes_a_merge_without_touching_the_checkout(
    workspace: Workspace,
) -> None:
    ours = await workspace.commit({"ours.txt": "o\n"})
    upstream = workspace.server.commit_to(OWNER, NAME, BASE, {"up.txt": "u\n"})
    await workspace.write("wip.txt", "the agent is mid-turn\n")
    result = await merge_branch_into_base(workspace.repo, BRANCH, BASE)
    assert result.status == "merged"
    assert workspace.remote_sha(BASE_REF) == result.sha
    parents = workspace.server._git(
        workspace.server.repo_path(OWNER, NAME), "rev-parse", f"{result.sha}^1", f"{result.sha}^2"
    ).split()
    assert parents == [upstream, ours]
    # The checkout: same branch, same HEAD, the uncommitted file still there, no worktree.
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == BRANCH
    assert await workspace.git("rev-parse", "HEAD") == ours
    assert (workspace.host_workdir / "wip.txt").exists()
    assert (await workspace.git("worktree", "list", "--porcelain")).count("worktree ") == 1
    assert workspace.credential_files() == []
    # Retried: the base already has the branch.
    pushes = len(workspace.pushes())
    again = await merge_branch_into_base(workspace.repo, BRANCH, BASE)
    assert (again.status, again.sha) == ("up-to-date", result.sha)
    assert len(workspace.pushes()) == pushes


async def test_merge_branch_into_base_conflict_leaves_everything_as_it_was(
    workspace: Workspace,
) -> None:
    ours = await workspace.commit({"README.md": "ours\n"})
    upstream = workspace.server.commit_to(OWNER, NAME, BASE, {"README.md": "theirs\n"})
    with pytest.raises(GitConflict) as caught:
        await merge_branch_into_base(workspace.repo, BRANCH, BASE)
    assert caught.value.files == ["README.md"]
    assert f"merging {BRANCH} into {BASE}" in caught.value.message
    assert workspace.remote_sha(BASE_REF) == upstream
    assert await workspace.git("rev-parse", "HEAD") == ours
    await _clean_and_idle(workspace)
    assert not (workspace.host_home / ".upstream-git" / "merge-worktree").exists()


async def test_merge_branch_into_base_clears_a_crashed_attempts_worktree(
    workspace: Workspace,
) -> None:
    await workspace.commit({"ours.txt": "o\n"})
    leftover = f"{workspace.info.home}/.upstream-git/merge-worktree"
    await workspace.git("worktree", "add", "--detach", leftover, f"origin/{BASE}")
    result = await merge_branch_into_base(workspace.repo, BRANCH, BASE)
    assert result.status == "merged"
    assert (await workspace.git("worktree", "list", "--porcelain")).count("worktree ") == 1


async def test_merge_branch_into_base_bad_input(workspace: Workspace) -> None:
    with pytest.raises(InvalidGitInput):
        await merge_branch_into_base(workspace.repo, BASE, BASE)
    with pytest.raises(InvalidGitInput, match="no local branch"):
        await merge_branch_into_base(workspace.repo, "ghost", BASE)
    with pytest.raises(InvalidGitInput):
        await merge_branch_into_base(workspace.repo, BRANCH, "no-such-base")


# -- rebase ---------------------------------------------------------------------------------


async def test_rebase_onto_base(workspace: Workspace) -> None:
    await workspace.commit({"ours.txt": "o\n"}, "ours")
    upstream = workspace.server.commit_to(OWNER, NAME, BASE, {"up.txt": "u\n"})
    result = await rebase_onto_base(workspace.repo, BASE)
    assert (result.status, result.rewrote_history) == ("rebased", True)
    assert await workspace.git("rev-parse", "HEAD") == result.sha
    assert await workspace.git("rev-parse", "HEAD^") == upstream
    assert await workspace.git("log", "-1", "--format=%s") == "ours"
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == BRANCH
    await _clean_and_idle(workspace)
    again = await rebase_onto_base(workspace.repo, BASE)
    assert (again.status, again.sha) == ("up-to-date", result.sha)


async def test_rebase_without_own_commits_fast_forwards(workspace: Workspace) -> None:
    upstream = workspace.server.commit_to(OWNER, NAME, BASE, {"up.txt": "u\n"})
    result = await rebase_onto_base(workspace.repo, BASE)
    assert (result.status, result.sha, result.rewrote_history) == (
        "fast-forward",
        upstream,
        False,
    )


async def test_rebase_conflict_is_aborted(workspace: Workspace) -> None:
    await workspace.commit({"a.txt": "fine\n"}, "first")
    ours = await workspace.commit({"README.md": "ours\n"}, "second")
    workspace.server.commit_to(OWNER, NAME, BASE, {"README.md": "theirs\n"})
    with pytest.raises(GitConflict) as caught:
        await rebase_onto_base(workspace.repo, BASE)
    assert caught.value.files == ["README.md"]
    assert caught.value.message.startswith(f"rebasing {BRANCH} onto {BASE} conflicts in 1 file")
    assert await workspace.git("rev-parse", "HEAD") == ours
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == BRANCH
    await _clean_and_idle(workspace)


# -- reset ----------------------------------------------------------------------------------


async def test_reset_hard_soft_and_mixed(workspace: Workspace) -> None:
    first = await workspace.commit({"a.txt": "1\n"})
    await workspace.commit({"a.txt": "2\n"})
    assert await reset_to(workspace.repo, first[:9], mode="soft") == first
    assert await workspace.git("status", "--porcelain") == "M  a.txt"
    assert await reset_to(workspace.repo, first, mode="mixed") == first
    assert await workspace.git("status", "--porcelain") == "M a.txt"
    assert await reset_to(workspace.repo, first) == first
    assert await workspace.git("status", "--porcelain") == ""
    assert (workspace.host_workdir / "a.txt").read_text() == "1\n"
    # Idempotent, and refs work too.
    assert await reset_to(workspace.repo, first) == first
    assert await reset_to(workspace.repo, f"origin/{BASE}") == await workspace.git(
        "rev-parse", f"origin/{BASE}"
    )


async def test_reset_to_a_bad_commit_is_invalid_input(workspace: Workspace) -> None:
    head = await workspace.git("rev-parse", "HEAD")
    for bad in ("0123456789abcdef" * 2 + "01234567", "--hard", "HEAD~1", "zzz", ""):
        with pytest.raises(InvalidGitInput):
            await reset_to(workspace.repo, bad)
    tree = await workspace.git("rev-parse", "HEAD^{tree}")
    with pytest.raises(InvalidGitInput):
        await reset_to(workspace.repo, tree)  # an object, but not a commit
    assert await workspace.git("rev-parse", "HEAD") == head


# -- tags -----------------------------------------------------------------------------------


async def test_lightweight_tag_is_created_and_pushed_once(workspace: Workspace) -> None:
    head = await workspace.commit({"a.txt": "1\n"})
    result = await create_tag(workspace.repo, "v1.0")
    assert (result.name, result.sha, result.pushed) == ("v1.0", head, True)
    assert workspace.remote_sha("refs/tags/v1.0") == head
    assert await workspace.git("cat-file", "-t", "v1.0") == "commit"
    pushes = len(workspace.pushes())
    again = await create_tag(workspace.repo, "v1.0")
    assert again == result
    assert len(workspace.pushes()) == pushes


async def test_annotated_tag_on_an_older_commit(workspace: Workspace) -> None:
    first = await workspace.commit({"a.txt": "1\n"})
    await workspace.commit({"a.txt": "2\n"})
    result = await create_tag(workspace.repo, "release/1", commit=first, message="First -m x")
    assert (result.sha, result.pushed) == (first, True)
    assert await workspace.git("cat-file", "-t", "release/1") == "tag"
    assert await workspace.git("tag", "-l", "--format=%(contents:subject)", "release/1") == (
        "First -m x"
    )
    assert workspace.remote_sha("refs/tags/release/1") == first  # peeled by ref_sha
    assert (await create_tag(workspace.repo, "release/1", commit=first, message="x")).pushed


async def test_tag_conflicts_and_bad_names(workspace: Workspace) -> None:
    first = await workspace.commit({"a.txt": "1\n"})
    await create_tag(workspace.repo, "v1", push=False)
    assert workspace.remote_sha("refs/tags/v1") is None
    await workspace.commit({"a.txt": "2\n"})
    with pytest.raises(GitOpError, match="already exists"):
        await create_tag(workspace.repo, "v1")
    assert (await create_tag(workspace.repo, "v1", commit=first)).pushed
    # Someone else's tag of the same name on the remote.
    other = workspace.server.commit_to(OWNER, NAME, "develop", {"x.txt": "x\n"})
    workspace.server._git(
        workspace.server.repo_path(OWNER, NAME), "update-ref", "refs/tags/v2", other
    )
    with pytest.raises(GitOpError, match="on the remote"):
        await create_tag(workspace.repo, "v2")
    assert await workspace.sh("git", "tag", "-l", "v2") == ""
    for bad in ("-v", "a..b", "x.lock", "has space", "a:b", "", "end/", "@", "x@{1}", "t\\n"):
        with pytest.raises(InvalidGitInput):
            await create_tag(workspace.repo, bad)
    with pytest.raises(InvalidGitInput):
        await create_tag(workspace.repo, "ok", commit="nope")


# -- rename and delete ----------------------------------------------------------------------


async def test_rename_a_pushed_branch_here_and_on_the_remote(workspace: Workspace) -> None:
    head = await workspace.commit({"a.txt": "1\n"})
    await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    result = await rename_branch(workspace.repo, BRANCH, "renamed", default_branch=BASE)
    assert (result.old_name, result.new_name, result.remote_renamed) == (BRANCH, "renamed", True)
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == "renamed"
    assert workspace.remote_sha("refs/heads/renamed") == head
    assert workspace.remote_sha(f"refs/heads/{BRANCH}") is None
    assert await workspace.git("rev-parse", "--abbrev-ref", "@{upstream}") == "origin/renamed"
    assert await workspace.sh("git", "branch", "--list", "--remotes", f"origin/{BRANCH}") == ""
    # Retried after it succeeded.
    again = await rename_branch(workspace.repo, BRANCH, "renamed", default_branch=BASE)
    assert again == result


async def test_rename_retried_after_only_the_local_part_happened(workspace: Workspace) -> None:
    head = await workspace.commit({"a.txt": "1\n"})
    await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    await workspace.git("branch", "-m", BRANCH, "renamed")  # then the worker died
    result = await rename_branch(workspace.repo, BRANCH, "renamed", default_branch=BASE)
    assert result.remote_renamed
    assert workspace.remote_sha("refs/heads/renamed") == head
    assert workspace.remote_sha(f"refs/heads/{BRANCH}") is None


async def test_rename_a_branch_never_pushed(workspace: Workspace) -> None:
    before = len(workspace.pushes())
    result = await rename_branch(workspace.repo, BRANCH, "local-only", default_branch=BASE)
    assert not result.remote_renamed
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == "local-only"
    assert len(workspace.pushes()) == before
    upstream = await workspace.sh("git", "rev-parse", "--abbrev-ref", "@{upstream}", ok=False)
    assert "origin" not in upstream


async def test_rename_refusals(workspace: Workspace) -> None:
    before = len(workspace.server.requests)
    with pytest.raises(ProtectedBranch):
        await rename_branch(workspace.repo, BRANCH, BASE, default_branch=BASE)
    with pytest.raises(ProtectedBranch):
        await rename_branch(workspace.repo, BASE, "x", default_branch=BASE)
    with pytest.raises(InvalidGitInput):
        await rename_branch(workspace.repo, BRANCH, "bad name", default_branch=BASE)
    with pytest.raises(InvalidGitInput, match="no local branch"):
        await rename_branch(workspace.repo, "ghost", "ghost2", default_branch=BASE)
    assert len(workspace.server.requests) == before
    await workspace.git("branch", "taken")
    with pytest.raises(InvalidGitInput, match="already exists"):
        await rename_branch(workspace.repo, BRANCH, "taken", default_branch=BASE)
    # A remote branch of that name, not ours.
    with pytest.raises(InvalidGitInput, match="on the remote"):
        await workspace.commit({"a.txt": "1\n"})
        await rename_branch(workspace.repo, BRANCH, "develop", default_branch=BASE)
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == BRANCH


async def test_delete_remote_branch(workspace: Workspace) -> None:
    await workspace.commit({"a.txt": "1\n"})
    await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert await delete_remote_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert workspace.remote_sha(f"refs/heads/{BRANCH}") is None
    assert await workspace.sh("git", "branch", "--list", "--remotes", f"origin/{BRANCH}") == ""
    # Absent (also: the retry of the call above).
    assert not await delete_remote_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert not await delete_remote_branch(workspace.repo, "never-there", default_branch=BASE)
    # The local branch is untouched.
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == BRANCH
    before = len(workspace.server.requests)
    with pytest.raises(ProtectedBranch):
        await delete_remote_branch(workspace.repo, BASE, default_branch=BASE)
    assert len(workspace.server.requests) == before
    assert workspace.remote_sha(BASE_REF) is not None
