"""Pushing a branch to origin, safe to retry.

A retried push (the activity ran again after the push went through but before its result was
recorded) must neither push twice nor put an older state back: the remote branch is looked
at first, and a remote that already has the commit, or has moved past it, is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gitops.errors import GitOpError, InvalidGitInput, ProtectedBranch, PushRejected
from gitops.workspace import SandboxRepo, check_branch, check_revision

_PUSH_TIMEOUT = 600.0


@dataclass(frozen=True)
class PushResult:
    sha: str  # where the remote branch is after the call
    status: Literal["pushed", "up-to-date"]
    forced: bool  # the remote branch was rewound or rewritten (never without force_with_lease)


async def push_branch(
    repo: SandboxRepo,
    branch: str,
    *,
    default_branch: str,
    sha: str | None = None,
    force_with_lease: bool = False,
) -> PushResult:
    """Push `sha` (default: HEAD) to `refs/heads/<branch>` on origin and make it the local
    branch's upstream.

    Without `force_with_lease`, a remote branch that equals or contains `sha` is success
    (`up-to-date`) without a push, and one that has other commits raises PushRejected. With
    it, the remote branch is overwritten only if it is still where `origin/<branch>` says it
    was when last fetched (absent, if it was never seen)."""
    check_branch(branch)
    if branch == default_branch:
        raise ProtectedBranch(
            f"refusing to push to {branch}, the repository's default branch; "
            "work on a branch of its own and merge it instead"
        )
    target = await resolve_target(repo, sha)
    tracking = f"refs/remotes/origin/{branch}"
    if force_with_lease:
        # Read before anything else touches the remote-tracking ref: the lease is what we
        # had seen, not what the remote says now.
        expected = await repo.resolve_commit(tracking)
        remote = (await repo.remote_refs(f"refs/heads/{branch}")).get(f"refs/heads/{branch}")
        if remote == target:
            await repo.git("update-ref", tracking, target)
            await set_upstream(repo, branch)
            return PushResult(target, "up-to-date", forced=False)
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        return await _push(repo, branch, target, lease=lease)
    remote = await repo.fetch_branch(branch)
    if remote is not None and (remote == target or await repo.is_ancestor(target, remote)):
        await set_upstream(repo, branch)
        return PushResult(remote, "up-to-date", forced=False)
    return await _push(repo, branch, target, lease=None)


async def resolve_target(repo: SandboxRepo, sha: str | None) -> str:
    if sha is None:
        return await repo.head()
    check_revision(sha, "commit to push")
    resolved = await repo.resolve_commit(sha)
    if resolved is None:
        raise InvalidGitInput(f"unknown commit {sha[:100]!r}")
    return resolved


async def set_upstream(repo: SandboxRepo, branch: str) -> None:
    """Make `origin/<branch>` the upstream of the local branch of that name, if there is one."""
    if await repo.resolve_commit(f"refs/heads/{branch}") is None:
        return
    current = await repo.read(
        "rev-parse", "--symbolic-full-name", f"refs/heads/{branch}@{{upstream}}", check=False
    )
    if current.stdout.strip() == f"refs/remotes/origin/{branch}":
        return
    await repo.git("config", f"branch.{branch}.remote", "origin")
    await repo.git("config", f"branch.{branch}.merge", f"refs/heads/{branch}")


@dataclass(frozen=True)
class RefUpdate:
    flag: str  # git push --porcelain: ' ' fast-forward, '+' forced, '-' deleted, '*' new,
    # '=' up to date, '!' rejected
    summary: str


def parse_porcelain(stdout: str, ref: str) -> RefUpdate | None:
    """The `git push --porcelain` line for the remote ref `ref`."""
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and len(parts[0]) == 1 and parts[1].rpartition(":")[2] == ref:
            return RefUpdate(parts[0], "\t".join(parts[2:]))
    return None


def rejection(update: RefUpdate, branch: str) -> GitOpError:
    """The error for a rejected ref update (flag '!')."""
    summary = update.summary
    if "stale info" in summary:
        return PushRejected(
            f"{branch} changed on the remote since it was last fetched (someone else pushed "
            "to it); fetch and review those commits, then push again"
        )
    if "non-fast-forward" in summary or "fetch first" in summary:
        return PushRejected(
            f"{branch} on the remote has commits this branch does not have (someone else "
            "pushed to it): merge them first, or push again with force_with_lease to "
            "overwrite them"
        )
    if "protected branch" in summary.lower():
        return ProtectedBranch(f"the remote refused to update {branch}: {summary}")
    return GitOpError(f"the remote refused to update {branch}: {summary}")


async def _push(repo: SandboxRepo, branch: str, target: str, *, lease: str | None) -> PushResult:
    ref = f"refs/heads/{branch}"
    options = [lease] if lease else []
    args = ("push", "--porcelain", *options, "origin", f"{target}:{ref}")
    result = await repo.git(*args, network=True, check=False, timeout=_PUSH_TIMEOUT)
    update = parse_porcelain(result.stdout, ref) if not result.timed_out else None
    if update is not None and update.flag == "!":
        raise rejection(update, branch)
    if result.exit_code != 0 or update is None:
        raise repo.error_for(result, args, timeout=_PUSH_TIMEOUT)
    await set_upstream(repo, branch)
    if update.flag == "=":
        return PushResult(target, "up-to-date", forced=False)
    return PushResult(target, "pushed", forced=update.flag == "+")
