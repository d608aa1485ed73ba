from __future__ import annotations

import uuid

import pytest

from gitops.errors import InvalidGitInput
from gitops.history import branch_history, parse_log, split_message
from gitops.operations import merge_base_into_branch
from gitops.push import push_branch
from tests.gitops.conftest import BASE, BRANCH, IDENTITY, NAME, OWNER, Workspace


async def _commit_message(workspace: Workspace, path: str, message: str) -> str:
    await workspace.write(path, message[:10])
    await workspace.git("add", "--all")
    await workspace.git("commit", "--quiet", "--cleanup=verbatim", "-m", message)
    return await workspace.git("rev-parse", "HEAD")


async def test_history_lists_the_branch_commits_newest_first_with_turn_ids(
    workspace: Workspace,
) -> None:
    turn = uuid.uuid4()
    plain = await _commit_message(workspace, "a.txt", "plain subject")
    odd = "odd \x1f\t|%x00 subject ünï 🚀"
    with_turn = await _commit_message(
        workspace,
        "b.txt",
        f"{odd}\ncontinued\n\nBody line one\n\nBody \x1f two\n\nUpstream-Turn: {turn}\n",
    )
    commits = await branch_history(workspace.repo, BASE)
    assert [c.sha for c in commits] == [with_turn, plain]
    newest, oldest = commits
    assert newest.subject == f"{odd} continued"
    assert newest.body == f"Body line one\n\nBody \x1f two\n\nUpstream-Turn: {turn}"
    assert newest.turn_id == str(turn)
    assert newest.parents == [plain]
    assert (newest.author_name, newest.author_email) == IDENTITY
    assert newest.authored_at[:4].isdigit() and "T" in newest.authored_at
    assert (oldest.subject, oldest.body, oldest.turn_id) == ("plain subject", "", None)


async def test_history_excludes_the_base_and_honours_the_limit(workspace: Workspace) -> None:
    workspace.server.commit_to(OWNER, NAME, BASE, {"upstream.txt": "u\n"})
    shas = [await _commit_message(workspace, f"f{i}.txt", f"commit {i}") for i in range(3)]
    merge = await merge_base_into_branch(workspace.repo, BASE)
    commits = await branch_history(workspace.repo, BASE)
    # The merge commit and our three; the base's own commit is not on the branch's list.
    assert [c.sha for c in commits] == [merge.sha, *reversed(shas)]
    assert len(commits[0].parents) == 2
    limited = await branch_history(workspace.repo, BASE, limit=2)
    assert [c.sha for c in limited] == [merge.sha, shas[2]]


async def test_a_fresh_branch_has_no_history(workspace: Workspace) -> None:
    assert await branch_history(workspace.repo, BASE) == []


async def test_bad_input(workspace: Workspace) -> None:
    with pytest.raises(InvalidGitInput):
        await branch_history(workspace.repo, "-base")
    with pytest.raises(InvalidGitInput):
        await branch_history(workspace.repo, BASE, limit=0)
    with pytest.raises(InvalidGitInput, match="does not exist"):
        await branch_history(workspace.repo, "no-such-base")


def test_parse_log_and_messages() -> None:
    record = "\x1f".join(
        ["a" * 40, "b" * 40 + " " + "c" * 40, "N", "e@x", "2024-01-01T00:00:00+00:00", "nope\n"]
    )
    [commit] = parse_log(record + "\x1fSubject\n\nbody\n\0")
    assert commit.parents == ["b" * 40, "c" * 40]
    assert (commit.subject, commit.body, commit.turn_id) == ("Subject", "body", None)
    assert split_message("one\ntwo\n\n\nthree\n") == ("one two", "three")
    assert split_message("") == ("", "")


async def test_history_sees_the_base_as_it_is_on_the_remote(workspace: Workspace) -> None:
    ours = await _commit_message(workspace, "a.txt", "ours")
    await push_branch(workspace.repo, BRANCH, default_branch=BASE)
    assert [c.sha for c in await branch_history(workspace.repo, BASE)] == [ours]
    # Merged on the remote (a fast-forward of the base, as a pull request can do).
    workspace.server._git(
        workspace.server.repo_path(OWNER, NAME), "update-ref", f"refs/heads/{BASE}", ours
    )
    assert await branch_history(workspace.repo, BASE) == []
    # Offline: the base as last fetched.
    later = await _commit_message(workspace, "b.txt", "later")
    workspace.server.stop()
    assert [c.sha for c in await branch_history(workspace.repo, BASE)] == [later]
