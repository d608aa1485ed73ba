"""The commits a branch has on top of its base, with the turn each one came from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gitops.errors import GitAuthError, InvalidGitInput, TransientGitError
from gitops.workspace import SandboxRepo, check_branch

TURN_TRAILER = "Upstream-Turn"
MAX_LIMIT = 10_000
# Fields end with US (0x1f); the raw message comes last, so whatever it contains (US
# included) cannot shift the fields before it. Records end with NUL (`-z`), which a commit
# message cannot contain.
_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", f"%(trailers:key={TURN_TRAILER},valueonly)", "%B")
_FORMAT = "%x1f".join(_FIELDS)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: list[str]
    author_name: str
    author_email: str
    authored_at: str  # ISO 8601 with the author's offset
    subject: str
    body: str  # the message after the subject paragraph, trailers included
    turn_id: str | None  # from the `Upstream-Turn: <uuid>` trailer


async def branch_history(repo: SandboxRepo, base: str, *, limit: int = 200) -> list[CommitInfo]:
    """Commits on HEAD that `origin/<base>` does not have, newest first. The base is fetched
    first when the remote can be reached."""
    check_branch(base, "base branch")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidGitInput(f"limit must be between 1 and {MAX_LIMIT}")
    tracking = f"refs/remotes/origin/{base}"
    try:
        found = await repo.fetch_branch(base)
    except (TransientGitError, GitAuthError):
        # Offline or without access: what was fetched last still answers the question.
        found = await repo.resolve_commit(tracking)
    if found is None:
        raise InvalidGitInput(f"branch {base!r} does not exist on the remote")
    head = await repo.head()
    result = await repo.read(
        "log",
        "-z",
        "--no-color",
        "--no-show-signature",
        "--encoding=UTF-8",
        f"--max-count={limit}",
        f"--format={_FORMAT}",
        "--end-of-options",
        head,
        f"^{tracking}",
        "--",
    )
    return parse_log(result.stdout)


def parse_log(output: str) -> list[CommitInfo]:
    commits: list[CommitInfo] = []
    for record in output.split("\0"):
        record = record.lstrip("\n")
        if not record:
            continue
        parts = record.split("\x1f", len(_FIELDS) - 1)
        if len(parts) != len(_FIELDS):
            continue
        sha, parents, name, email, date, trailers, message = parts
        subject, body = split_message(message)
        commits.append(
            CommitInfo(
                sha=sha,
                parents=parents.split(),
                author_name=name,
                author_email=email,
                authored_at=date,
                subject=subject,
                body=body,
                turn_id=_turn_id(trailers),
            )
        )
    return commits


def split_message(message: str) -> tuple[str, str]:
    """(subject, body) as git's %s and %b: the first paragraph on one line, then the rest."""
    lines = message.strip("\n").split("\n")
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    subject = " ".join(line.strip() for line in lines[:end])
    body = "\n".join(lines[end:]).strip("\n")
    return subject, body


def _turn_id(trailers: str) -> str | None:
    # The last one wins, as for any trailer that should occur once.
    for value in reversed(trailers.splitlines()):
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            continue
    return None
