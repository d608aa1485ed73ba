"""The first checkout of a branch's sandbox.

Built from steps that are each safe to repeat (init, set the remote, fetch, check out) rather
than one `git clone`: a clone killed halfway (worker gone, timeout) leaves a directory a
second `git clone` refuses, while these steps simply run again over it.
"""

from __future__ import annotations

from gitops.errors import InvalidGitInput
from gitops.workspace import SandboxRepo, check_branch

_FETCH_TIMEOUT = 20 * 60.0


async def clone(
    repo: SandboxRepo, url: str, *, base: str, branch: str, identity: tuple[str, str]
) -> None:
    """Check out a new `branch` from `base` of `url` in `repo.workdir`, committing as
    `identity` (name, email). Does nothing when the workdir already holds a checkout."""
    check_branch(base, "base branch")
    check_branch(branch)
    _check_url(url)
    name, email = identity
    if not name.strip() or not email.strip() or any(c in name + email for c in "\n\r\0"):
        raise InvalidGitInput("the commit identity needs a one-line name and email")

    if await _has_checkout(repo):
        return
    await repo.run(["mkdir", "-p", "--", repo.workdir], cwd=repo.home)
    await repo.git("init", "--quiet", f"--initial-branch={branch}")
    # Before the checkout: once HEAD resolves a retry does nothing, so everything else must
    # already be in place by then.
    await repo.git("config", "user.name", name)
    await repo.git("config", "user.email", email)
    current = await repo.git("config", "--local", "--get", "remote.origin.url", check=False)
    if current.exit_code != 0:
        await repo.git("remote", "add", "origin", url)
    elif current.stdout.strip() != url:
        await repo.git("remote", "set-url", "origin", url)
    # A fresh `git init` has no refspec for origin until `remote add` wrote one; set it again
    # in case an earlier attempt was cut off between the two.
    await repo.git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
    args = ("fetch", "origin", f"+refs/heads/{base}:refs/remotes/origin/{base}")
    fetched = await repo.git(
        *args, network=True, check=False, remote_url=url, timeout=_FETCH_TIMEOUT
    )
    if fetched.exit_code != 0:
        if not fetched.timed_out and "couldn't find remote ref" in fetched.stderr:
            raise InvalidGitInput(f"branch {base!r} does not exist in the repository")
        raise repo.error_for(fetched, args, timeout=_FETCH_TIMEOUT)
    # -f: a checkout cut off halfway leaves its files untracked, in the way of a plain one;
    # HEAD is still unborn here, so there is nothing of ours to lose.
    await repo.git(
        "checkout",
        "--quiet",
        "--force",
        "--no-track",
        "-B",
        branch,
        f"refs/remotes/origin/{base}",
        timeout=_FETCH_TIMEOUT,
    )


async def _has_checkout(repo: SandboxRepo) -> bool:
    exists = await repo.run(["test", "-d", repo.workdir], cwd=repo.home)
    if exists.exit_code != 0:
        return False
    # `--git-dir` is the relative `.git` only at the top of a work tree: a repository in a
    # directory above the workdir does not count.
    git_dir = await repo.read("rev-parse", "--git-dir", check=False)
    if git_dir.exit_code != 0 or git_dir.stdout.strip() != ".git":
        return False
    return await repo.resolve_commit("HEAD") is not None


def _check_url(url: str) -> None:
    if not url or url.startswith("-") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidGitInput("the repository URL is empty, starts with '-' or has control chars")
