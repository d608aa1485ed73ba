"""Branch operations in a sandbox's checkout: merges both ways, rebase, reset, tags, rename,
remote deletion.

Each is safe to run again after it succeeded or died halfway, and none leaves a merge or
rebase in progress behind: a conflict is aborted before GitConflict is raised, and what a
killed attempt left (a merge of the same commit in progress, a temporary worktree) is cleared
by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gitops.errors import GitConflict, GitOpError, InvalidGitInput, ProtectedBranch, PushRejected
from gitops.push import parse_porcelain, rejection, set_upstream
from gitops.workspace import SandboxRepo, check_branch, check_revision, check_tag

_MERGE_TIMEOUT = 600.0
_PUSH_TIMEOUT = 600.0
_MAX_LISTED_FILES = 10


@dataclass(frozen=True)
class MergeResult:
    # "rebased": history was rewritten, so a branch that was pushed before now needs a push
    # with force_with_lease.
    status: Literal["merged", "up-to-date", "fast-forward", "rebased"]
    sha: str  # HEAD after a merge into the branch or a rebase; the base's new head otherwise

    @property
    def rewrote_history(self) -> bool:
        return self.status == "rebased"


@dataclass(frozen=True)
class TagResult:
    name: str
    sha: str  # the commit tagged
    pushed: bool  # the tag is on origin


@dataclass(frozen=True)
class RenameResult:
    old_name: str
    new_name: str
    remote_renamed: bool  # origin has the branch under its new name


# -- fetch and state ------------------------------------------------------------------------


async def fetch(repo: SandboxRepo, *branches: str) -> None:
    """Update `origin/<b>` for each branch (every branch when none is named)."""
    for branch in branches:
        check_branch(branch)
    if branches:
        await repo.fetch_branches(*branches)
    else:
        await repo.git("fetch", "--prune", "origin", network=True, timeout=_PUSH_TIMEOUT)


async def working_tree_dirty(repo: SandboxRepo) -> bool:
    """Whether anything is uncommitted: staged, unstaged or untracked (not ignored) files."""
    result = await repo.read("status", "--porcelain=v1", "-z", "--untracked-files=normal")
    return bool(result.stdout.strip("\0"))


async def _require_clean(repo: SandboxRepo, doing: str) -> None:
    if await working_tree_dirty(repo):
        raise GitOpError(
            f"cannot {doing}: the working tree has uncommitted changes; "
            "commit or discard them first"
        )


async def _conflicted_files(repo: SandboxRepo, *, cwd_args: tuple[str, ...] = ()) -> list[str]:
    result = await repo.git(*cwd_args, "diff", "--name-only", "--diff-filter=U", "-z", check=False)
    return sorted({name for name in result.stdout.split("\0") if name})


def _conflict(what: str, files: list[str]) -> GitConflict:
    shown = ", ".join(files[:_MAX_LISTED_FILES])
    if len(files) > _MAX_LISTED_FILES:
        shown += f" and {len(files) - _MAX_LISTED_FILES} more"
    noun = "file" if len(files) == 1 else "files"
    return GitConflict(f"{what} conflicts in {len(files)} {noun}: {shown}", files)


async def _in_progress(repo: SandboxRepo) -> Literal["merge", "rebase"] | None:
    if await repo.resolve_commit("MERGE_HEAD") is not None:
        return "merge"
    merge_dir = await repo.git_path("rebase-merge")
    apply_dir = await repo.git_path("rebase-apply")
    found = await repo.run(
        ["sh", "-c", 'test -d "$1" || test -d "$2"', "sh", merge_dir, apply_dir], cwd=repo.home
    )
    return "rebase" if found.exit_code == 0 else None


async def _clear_leftovers(repo: SandboxRepo, target_ref: str) -> None:
    """Abort a merge or rebase onto `target_ref` that an earlier attempt of ours left behind
    (worker killed mid-command); refuse to go on over anybody else's."""
    state = await _in_progress(repo)
    if state is None:
        return
    target = await repo.resolve_commit(target_ref)
    if state == "merge":
        ours = target is not None and await repo.resolve_commit("MERGE_HEAD") == target
    else:
        onto = await repo.run(
            ["cat", "--", f"{await repo.git_path('rebase-merge')}/onto"], cwd=repo.home
        )
        ours = target is not None and onto.stdout.strip() == target
    if not ours:
        raise GitOpError(f"a {state} is in progress in the working tree; finish or abort it first")
    await repo.git(state, "--abort")


# -- merges and rebase ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Onto:
    target: str  # origin/<base>, as fetched now
    fast_forward: bool  # HEAD is an ancestor of target
    branch: str


async def _onto_base(repo: SandboxRepo, base: str, action: str) -> _Onto | MergeResult:
    """What merging or rebasing onto `origin/<base>` starts from: a clean tree, the base
    fetched, and an `up-to-date` answer when there is nothing to do (a retried call)."""
    check_branch(base, "base branch")
    tracking = f"refs/remotes/origin/{base}"
    await _clear_leftovers(repo, tracking)
    await _require_clean(repo, action)
    await repo.fetch_branches(base)
    target = await _resolved(repo, tracking)
    head = await repo.head()
    if await repo.is_ancestor(target, head):
        return MergeResult("up-to-date", head)
    fast_forward = await repo.is_ancestor(head, target)
    return _Onto(target, fast_forward, await repo.current_branch() or "HEAD")


async def merge_base_into_branch(repo: SandboxRepo, base: str) -> MergeResult:
    """Merge `origin/<base>` into the checked-out branch (fast-forward when possible)."""
    onto = await _onto_base(repo, base, f"merge {base}")
    if isinstance(onto, MergeResult):
        return onto
    target, fast_forward, branch = onto.target, onto.fast_forward, onto.branch
    what = f"merging {base} into {branch}"
    args = (
        "merge", "--ff", "--no-edit", "--no-verify", "--no-autostash",
        "-m", f"Merge branch '{base}' into {branch}",
        target,
    )  # fmt: skip
    result = await repo.git(*args, check=False, timeout=_MERGE_TIMEOUT)
    if result.exit_code != 0:
        files = await _conflicted_files(repo)
        if await repo.resolve_commit("MERGE_HEAD") is not None:
            await repo.git("merge", "--abort")
        if files:
            raise _conflict(what, files)
        raise repo.error_for(result, args, timeout=_MERGE_TIMEOUT)
    return MergeResult("fast-forward" if fast_forward else "merged", await repo.head())


async def rebase_onto_base(repo: SandboxRepo, base: str) -> MergeResult:
    """Rebase the checked-out branch onto `origin/<base>`."""
    onto = await _onto_base(repo, base, f"rebase onto {base}")
    if isinstance(onto, MergeResult):
        return onto
    target, fast_forward, branch = onto.target, onto.fast_forward, onto.branch
    args = (
        "rebase", "--no-verify", "--no-autostash", "--no-autosquash", "--no-update-refs",
        target,
    )  # fmt: skip
    result = await repo.git(*args, check=False, timeout=_MERGE_TIMEOUT)
    if result.exit_code != 0:
        files = await _conflicted_files(repo)
        if await _in_progress(repo) == "rebase":
            await repo.git("rebase", "--abort")
        if files:
            raise _conflict(f"rebasing {branch} onto {base}", files)
        raise repo.error_for(result, args, timeout=_MERGE_TIMEOUT)
    return MergeResult("fast-forward" if fast_forward else "rebased", await repo.head())


async def merge_branch_into_base(repo: SandboxRepo, branch: str, base: str) -> MergeResult:
    """Merge the local `branch` into `base` on origin, without touching the checkout: the
    merge is made in a temporary worktree of `origin/<base>` and pushed from there."""
    check_branch(branch)
    check_branch(base, "base branch")
    if branch == base:
        raise InvalidGitInput("cannot merge a branch into itself")
    branch_sha = await repo.resolve_commit(f"refs/heads/{branch}")
    if branch_sha is None:
        raise InvalidGitInput(f"there is no local branch {branch!r}")
    await repo.fetch_branches(base)
    tracking = f"refs/remotes/origin/{base}"
    target = await _resolved(repo, tracking)
    if await repo.is_ancestor(branch_sha, target):
        return MergeResult("up-to-date", target)
    worktree = f"{repo.scratch_dir}/merge-worktree"
    # Hooks off: nothing from the repository runs in a worktree that is ours alone.
    in_tree = ("-C", worktree, "-c", "core.hooksPath=/dev/null")
    await _remove_worktree(repo, worktree)
    try:
        await repo.git(
            "-c", "core.hooksPath=/dev/null",
            "worktree", "add", "--detach", "--quiet", worktree, target,
            timeout=_MERGE_TIMEOUT,
        )  # fmt: skip
        args = (
            *in_tree, "merge", "--no-ff", "--no-edit", "--no-verify",
            "-m", f"Merge branch '{branch}' into {base}",
            branch_sha,
        )  # fmt: skip
        result = await repo.git(*args, check=False, timeout=_MERGE_TIMEOUT)
        if result.exit_code != 0:
            files = await _conflicted_files(repo, cwd_args=("-C", worktree))
            if files:
                raise _conflict(f"merging {branch} into {base}", files)
            raise repo.error_for(result, args, timeout=_MERGE_TIMEOUT)
        merged = (await repo.git("-C", worktree, "rev-parse", "HEAD")).stdout.strip()
        ref = f"refs/heads/{base}"
        push = ("-C", worktree, "push", "--porcelain", "origin", f"{merged}:{ref}")
        pushed = await repo.git(*push, network=True, check=False, timeout=_PUSH_TIMEOUT)
        update = parse_porcelain(pushed.stdout, ref) if not pushed.timed_out else None
        if update is not None and update.flag == "!":
            error = rejection(update, base)
            if isinstance(error, PushRejected):
                raise PushRejected(f"{base} moved on the remote while merging; try again")
            raise error
        if pushed.exit_code != 0 or update is None:
            raise repo.error_for(pushed, push, timeout=_PUSH_TIMEOUT)
        return MergeResult("merged", merged)
    finally:
        await _remove_worktree(repo, worktree)


async def _remove_worktree(repo: SandboxRepo, path: str) -> None:
    await repo.git("worktree", "remove", "--force", "--force", path, check=False)
    await repo.run(["rm", "-rf", "--", path], cwd=repo.home)
    await repo.git("worktree", "prune", check=False)


async def _resolved(repo: SandboxRepo, ref: str) -> str:
    sha = await repo.resolve_commit(ref)
    if sha is None:
        raise GitOpError(f"{ref} does not resolve to a commit")
    return sha


# -- reset and tags -------------------------------------------------------------------------


async def reset_to(
    repo: SandboxRepo, commit: str, *, mode: Literal["hard", "soft", "mixed"] = "hard"
) -> str:
    """Move the checked-out branch to `commit`; returns the new HEAD."""
    if mode not in ("hard", "soft", "mixed"):
        raise InvalidGitInput(f"unknown reset mode {mode!r}; use hard, soft or mixed")
    check_revision(commit)
    sha = await repo.resolve_commit(commit)
    if sha is None:
        raise InvalidGitInput(f"no commit {commit[:100]!r} in this repository")
    await repo.git("reset", f"--{mode}", "--quiet", sha, "--")
    return await repo.head()


async def create_tag(
    repo: SandboxRepo,
    name: str,
    *,
    commit: str | None = None,
    message: str | None = None,
    push: bool = True,
) -> TagResult:
    """Tag `commit` (default HEAD); annotated when `message` is given. An existing tag on the
    same commit is success; on another commit, an error."""
    check_tag(name)
    if message is not None and "\0" in message:
        raise InvalidGitInput("the tag message contains a NUL character")
    if commit is None:
        sha = await repo.head()
    else:
        check_revision(commit)
        found = await repo.resolve_commit(commit)
        if found is None:
            raise InvalidGitInput(f"no commit {commit[:100]!r} in this repository")
        sha = found
    ref = f"refs/tags/{name}"
    local = await repo.resolve_commit(ref)
    if local is not None and local != sha:
        raise GitOpError(f"tag {name} already exists on another commit ({local[:12]})")
    remote: str | None = None
    if push:
        refs = await repo.remote_refs(ref)
        remote = refs.get(f"{ref}^{{}}", refs.get(ref))
        if remote is not None and remote != sha:
            raise GitOpError(
                f"tag {name} already exists on the remote on another commit ({remote[:12]})"
            )
    if local is None:
        if message is None:
            await repo.git("tag", "--no-sign", "--end-of-options", name, sha)
        else:
            await repo.git(
                "tag", "--annotate", "--no-sign", "-m", message, "--end-of-options", name, sha
            )
    if push and remote is None:
        args = ("push", "--porcelain", "origin", f"{ref}:{ref}")
        result = await repo.git(*args, network=True, check=False, timeout=_PUSH_TIMEOUT)
        update = parse_porcelain(result.stdout, ref) if not result.timed_out else None
        if update is not None and update.flag == "!":
            raise GitOpError(f"the remote refused tag {name}: {update.summary}")
        if result.exit_code != 0 or update is None:
            raise repo.error_for(result, args, timeout=_PUSH_TIMEOUT)
    return TagResult(name, sha, pushed=push)


# -- rename and delete ----------------------------------------------------------------------


async def rename_branch(
    repo: SandboxRepo, old: str, new: str, *, default_branch: str
) -> RenameResult:
    """Rename the local branch and, if origin has it, the remote one (atomically: the new
    name is pushed and the old one deleted in one push)."""
    check_branch(old)
    check_branch(new, "new branch name")
    for name in (old, new):
        if name == default_branch:
            raise ProtectedBranch(
                f"refusing to rename {'from' if name == old else 'to'} {name}, "
                "the repository's default branch"
            )
    if old == new:
        raise InvalidGitInput("the new name is the same as the old one")
    old_local = await repo.resolve_commit(f"refs/heads/{old}")
    new_local = await repo.resolve_commit(f"refs/heads/{new}")
    if old_local is not None and new_local is not None:
        raise InvalidGitInput(f"a local branch named {new!r} already exists")
    sha = old_local or new_local
    if sha is None:
        raise InvalidGitInput(f"there is no local branch {old!r}")
    old_ref, new_ref = f"refs/heads/{old}", f"refs/heads/{new}"
    remote = await repo.remote_refs(old_ref, new_ref)
    old_remote, new_remote = remote.get(old_ref), remote.get(new_ref)
    if old_remote is not None:
        # The old remote branch goes away: it must hold nothing the renamed one lacks.
        fetched = await repo.fetch_branch(old)
        if fetched is not None and not await repo.is_ancestor(fetched, sha):
            raise PushRejected(
                f"{old} on the remote has commits this branch does not have; merge them "
                "before renaming"
            )
    # Once the local branch carries the new name this is a retry, and a remote branch of that
    # name is ours.
    if new_remote is not None and new_remote != sha and old_local is not None:
        raise InvalidGitInput(f"a branch named {new!r} already exists on the remote")
    if old_local is not None:
        await repo.git("branch", "--move", "--end-of-options", old, new)
    if old_remote is not None:
        lease = f"--force-with-lease={old_ref}:{old_remote}"
        refspecs = [f":{old_ref}"] if new_remote == sha else [f"{new_ref}:{new_ref}", f":{old_ref}"]
        args = ("push", "--porcelain", "--atomic", lease, "origin", *refspecs)
        result = await repo.git(*args, network=True, check=False, timeout=_PUSH_TIMEOUT)
        for ref, branch in ((new_ref, new), (old_ref, old)):
            update = parse_porcelain(result.stdout, ref) if not result.timed_out else None
            if update is not None and update.flag == "!" and "atomic" not in update.summary:
                raise rejection(update, branch)
        if result.exit_code != 0:
            raise repo.error_for(result, args, timeout=_PUSH_TIMEOUT)
        new_remote = sha
    remote_renamed = new_remote is not None
    if remote_renamed:
        await set_upstream(repo, new)
    else:
        # `branch -m` carried the old upstream over; it names a branch origin does not have.
        await repo.git("config", "--unset", f"branch.{new}.merge", check=False)
        await repo.git("config", "--unset", f"branch.{new}.remote", check=False)
    return RenameResult(old, new, remote_renamed)


async def delete_remote_branch(repo: SandboxRepo, branch: str, *, default_branch: str) -> bool:
    """Delete `branch` on origin; True if it was there."""
    check_branch(branch)
    if branch == default_branch:
        raise ProtectedBranch(f"refusing to delete {branch}, the repository's default branch")
    ref = f"refs/heads/{branch}"
    # Asked first: a push deleting a missing full ref name "succeeds" without saying so.
    remote = (await repo.remote_refs(ref)).get(ref)
    if remote is None:
        await repo.git("update-ref", "-d", f"refs/remotes/origin/{branch}", check=False)
        return False
    lease = f"--force-with-lease={ref}:{remote}"
    args = ("push", "--porcelain", lease, "origin", f":{ref}")
    result = await repo.git(*args, network=True, check=False, timeout=_PUSH_TIMEOUT)
    update = parse_porcelain(result.stdout, ref) if not result.timed_out else None
    if update is not None and update.flag == "!":
        raise rejection(update, branch)
    if result.exit_code != 0 or update is None:
        raise repo.error_for(result, args, timeout=_PUSH_TIMEOUT)
    return True
