"""A branch's changes as structured data: `git diff` parsed into files, hunks and lines.

The diff runs against the working tree, uncommitted and untracked files included, because
the agent may be in the middle of a turn. It is taken through a temporary index file, so
the checkout's own index (and whatever the agent has staged) is never touched.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from gitops.errors import GitOpError, InvalidGitInput
from gitops.workspace import SandboxRepo, check_revision

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_FULL_HEX = re.compile(r"^[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")
_C_ESCAPES = {
    "a": 0x07, "b": 0x08, "t": 0x09, "n": 0x0A, "v": 0x0B, "f": 0x0C, "r": 0x0D,
    '"': 0x22, "\\": 0x5C,
}  # fmt: skip
_DIFF_TIMEOUT = 300.0
FILE_HEADER = b"\ndiff --git "

FileStatus = Literal["added", "modified", "deleted", "renamed", "copied", "type-changed"]


@dataclass(frozen=True)
class DiffLine:
    kind: Literal["context", "add", "delete"]
    content: str  # without the leading ' ', '+' or '-'
    old_line: int | None
    new_line: int | None
    no_newline_at_eof: bool = False  # followed by "\ No newline at end of file"


@dataclass(frozen=True)
class DiffHunk:
    header: str  # the whole "@@ -a,b +c,d @@ section" line
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: list[DiffLine]


@dataclass(frozen=True)
class DiffFile:
    path: str  # the new path; the old one for a deleted file
    old_path: str | None  # set for renames and copies only
    status: FileStatus
    additions: int
    deletions: int
    binary: bool
    hunks: list[DiffHunk]
    old_mode: str | None = None
    new_mode: str | None = None


@dataclass(frozen=True)
class DiffResult:
    against: str  # as asked for
    base_sha: str  # merge-base of HEAD and `against`
    head_sha: str  # HEAD; the diff also covers uncommitted and untracked changes on top
    files: list[DiffFile]
    truncated: bool  # files beyond max_bytes were left out (whole files, never half of one)


# -- parsing --------------------------------------------------------------------------------


@dataclass
class _File:
    header_path: str | None = None
    old_path: str | None = None
    new_path: str | None = None
    rename_from: str | None = None
    rename_to: str | None = None
    copy: bool = False
    new_file: bool = False
    deleted: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    binary: bool = False
    hunks: list[DiffHunk] = dataclasses.field(default_factory=list)


def parse_unified_diff(text: str) -> list[DiffFile]:
    """Parse `git diff` output (`a/` and `b/` prefixes, any core.quotePath setting)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    files: list[DiffFile] = []
    current: _File | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            if current is not None:
                files.append(_finish(current))
            current = _File(header_path=_header_path(line[len("diff --git ") :]))
            i += 1
            continue
        if current is None:
            i += 1  # anything before the first file header
            continue
        if line.startswith("@@ "):
            hunk, i = _parse_hunk(lines, i)
            current.hunks.append(hunk)
            continue
        _header_line(current, line)
        i += 1
    if current is not None:
        files.append(_finish(current))
    return _merge_type_changes(files)


def _header_line(current: _File, line: str) -> None:
    if line.startswith("--- "):
        current.old_path = _strip_prefix(_path_token(line[4:]), "a/")
    elif line.startswith("+++ "):
        current.new_path = _strip_prefix(_path_token(line[4:]), "b/")
    elif line.startswith("rename from "):
        current.rename_from = _path_token(line[len("rename from ") :])
    elif line.startswith("rename to "):
        current.rename_to = _path_token(line[len("rename to ") :])
    elif line.startswith("copy from "):
        current.rename_from = _path_token(line[len("copy from ") :])
        current.copy = True
    elif line.startswith("copy to "):
        current.rename_to = _path_token(line[len("copy to ") :])
        current.copy = True
    elif line.startswith("new file mode "):
        current.new_file = True
        current.new_mode = line[len("new file mode ") :].strip()
    elif line.startswith("deleted file mode "):
        current.deleted = True
        current.old_mode = line[len("deleted file mode ") :].strip()
    elif line.startswith("old mode "):
        current.old_mode = line[len("old mode ") :].strip()
    elif line.startswith("new mode "):
        current.new_mode = line[len("new mode ") :].strip()
    elif line.startswith("Binary files ") or line == "GIT binary patch":
        current.binary = True


def _parse_hunk(lines: list[str], i: int) -> tuple[DiffHunk, int]:
    header = lines[i]
    match = _HUNK.match(header)
    if match is None:
        raise ValueError(f"malformed hunk header: {header[:200]!r}")
    old_start, new_start = int(match[1]), int(match[3])
    old_count = int(match[2]) if match[2] is not None else 1
    new_count = int(match[4]) if match[4] is not None else 1
    old_left, new_left = old_count, new_count
    old_no, new_no = old_start, new_start
    out: list[DiffLine] = []
    i += 1
    # Counted, not recognised by look: a deleted line "-- x" reads "--- x", like a header.
    while i < len(lines) and (old_left > 0 or new_left > 0 or lines[i].startswith("\\")):
        line = lines[i]
        tag, content = line[:1], line[1:]
        if tag == "\\":
            if out:
                out[-1] = dataclasses.replace(out[-1], no_newline_at_eof=True)
        elif tag == "+":
            out.append(DiffLine("add", content, None, new_no))
            new_no += 1
            new_left -= 1
        elif tag == "-":
            out.append(DiffLine("delete", content, old_no, None))
            old_no += 1
            old_left -= 1
        elif tag in (" ", ""):
            # An empty line is a context line whose leading space was stripped (some
            # editors and mail paths do that).
            out.append(DiffLine("context", content, old_no, new_no))
            old_no += 1
            new_no += 1
            old_left -= 1
            new_left -= 1
        else:
            break
        i += 1
    hunk = DiffHunk(header, old_start, old_count, new_start, new_count, out)
    return hunk, i


def _finish(f: _File) -> DiffFile:
    old = f.rename_from or (f.old_path if f.old_path != "/dev/null" else None)
    new = f.rename_to or (f.new_path if f.new_path != "/dev/null" else None)
    if old is None and not f.new_file:
        old = f.header_path
    if new is None and not f.deleted:
        new = f.header_path
    status: FileStatus
    if f.new_file:
        status = "added"
    elif f.deleted:
        status = "deleted"
    elif f.rename_from is not None:
        status = "copied" if f.copy else "renamed"
    elif f.old_mode and f.new_mode and _file_type(f.old_mode) != _file_type(f.new_mode):
        status = "type-changed"
    else:
        status = "modified"
    path = new if new is not None else old
    lines = [line for hunk in f.hunks for line in hunk.lines]
    return DiffFile(
        path=path or "",
        old_path=old if status in ("renamed", "copied") else None,
        status=status,
        additions=sum(1 for line in lines if line.kind == "add"),
        deletions=sum(1 for line in lines if line.kind == "delete"),
        binary=f.binary,
        hunks=f.hunks,
        old_mode=f.old_mode,
        new_mode=f.new_mode,
    )


def _merge_type_changes(files: list[DiffFile]) -> list[DiffFile]:
    """git prints a file that became a symlink (or the reverse) as a deletion followed by an
    addition of the same path; report it as one type change."""
    merged: list[DiffFile] = []
    for file in files:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.status == "deleted"
            and file.status == "added"
            and previous.path == file.path
        ):
            merged[-1] = DiffFile(
                path=file.path,
                old_path=None,
                status="type-changed",
                additions=file.additions,
                deletions=previous.deletions,
                binary=previous.binary or file.binary,
                hunks=previous.hunks + file.hunks,
                old_mode=previous.old_mode,
                new_mode=file.new_mode,
            )
        else:
            merged.append(file)
    return merged


def _file_type(mode: str) -> str:
    return mode[:-3] if len(mode) > 3 else mode  # 100644 and 100755 are both files


def _path_token(text: str) -> str:
    """A path as git prints it after a header keyword: C-quoted, or raw up to a tab (git adds
    one after a name with a space in ---/+++ lines)."""
    if text.startswith('"'):
        value, _ = _unquote(text)
        return value
    return text.split("\t", 1)[0]


def _header_path(rest: str) -> str | None:
    """The path in `diff --git a/P b/P` when both sides name the same file (always so unless
    a rename or copy, whose own headers say both names)."""
    if rest.startswith('"'):
        first, end = _unquote(rest)
        second = rest[end + 1 :]
        other = _unquote(second)[0] if second.startswith('"') else second
        return _strip_prefix(other, "b/") if other else _strip_prefix(first, "a/")
    if rest.endswith('"') and ' "' in rest:
        start = rest.index(' "')
        return _strip_prefix(_unquote(rest[start + 1 :])[0], "b/")
    if len(rest) % 2 == 1:
        half = len(rest) // 2
        a, b = rest[:half], rest[half + 1 :]
        if rest[half] == " " and a.startswith("a/") and b.startswith("b/") and a[2:] == b[2:]:
            return a[2:]
    position = rest.find(" b/")
    return rest[position + 3 :] if position >= 0 else None


def _strip_prefix(path: str, prefix: str) -> str:
    return path[len(prefix) :] if path.startswith(prefix) else path


def _unquote(text: str) -> tuple[str, int]:
    """Decode the C-quoted string at the start of `text`; (value, index after the quote)."""
    out = bytearray()
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return out.decode("utf-8", errors="replace"), i + 1
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "01234567" and i + 3 < len(text):
                out.append(int(text[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_C_ESCAPES.get(nxt, ord(nxt) if ord(nxt) < 0x80 else 0x3F))
            i += 2
            continue
        out.extend(char.encode("utf-8", errors="surrogateescape"))
        i += 1
    return out.decode("utf-8", errors="replace"), len(text)


def cut_to_whole_files(data: bytes, max_bytes: int) -> tuple[bytes, bool]:
    """At most `max_bytes` of a patch, cut before the first file that does not fit whole.

    `data` may be a prefix of the patch; it needs `len(FILE_HEADER)` bytes past `max_bytes`
    to see whether a file ends exactly there."""
    if len(data) <= max_bytes:
        return data, False
    # The kept part ends with the newline at `cut`, so `cut` must be below `max_bytes`.
    cut = data.rfind(FILE_HEADER, 0, max_bytes - 1 + len(FILE_HEADER))
    return (data[: cut + 1] if cut >= 0 else b""), True


# -- the branch diff ------------------------------------------------------------------------


async def branch_diff(repo: SandboxRepo, against: str, *, max_bytes: int = 2_000_000) -> DiffResult:
    """Changes of the working tree since it forked from `against` (a branch on origin, or a
    local branch, tag or commit sha), including uncommitted and untracked files."""
    if max_bytes <= 0:
        raise InvalidGitInput("max_bytes must be positive")
    check_revision(against, "branch, tag or commit to compare with")
    ref = await _resolve_against(repo, against)
    head = await repo.head()
    base = await repo.read("merge-base", "--end-of-options", head, ref, check=False)
    base_sha = base.stdout.strip()
    if base.exit_code != 0 or not base_sha:
        if base.exit_code == 1:
            raise InvalidGitInput(f"{against!r} has no history in common with this branch")
        raise repo.error_for(base, ("merge-base",))
    data = await _working_tree_patch(repo, base_sha, max_bytes)
    data, truncated = cut_to_whole_files(data, max_bytes)
    files = parse_unified_diff(data.decode("utf-8", errors="replace"))
    return DiffResult(against, base_sha, head, files, truncated)


async def _resolve_against(repo: SandboxRepo, against: str) -> str:
    """A full sha for `against`: the remote branch of that name if origin has one (fetched
    now), else a local ref or sha."""
    local = await repo.resolve_commit(against)
    # A sha, or HEAD, needs no trip to the remote.
    if local is not None and (against == "HEAD" or _HEX.fullmatch(against)):
        return local
    remote = await repo.fetch_branch(against)
    if remote is not None:
        return remote
    if local is None:
        raise InvalidGitInput(f"no branch, tag or commit named {against[:100]!r}")
    return local


async def _working_tree_patch(repo: SandboxRepo, base_sha: str, max_bytes: int) -> bytes:
    scratch = repo.scratch_dir
    token = secrets.token_hex(8)
    index = f"{scratch}/diff-index-{token}"
    output = f"{scratch}/diff-{token}.patch"
    env = {"GIT_INDEX_FILE": index}
    await repo.run(["mkdir", "-p", "--", scratch], cwd=repo.home)
    try:
        # Start from a copy of the real index: its stat data spares `add -A` from hashing
        # every unchanged file again. No index yet (or unreadable): from HEAD's tree.
        real_index = await repo.git_path("index")
        copied = await repo.run(["cp", "--", real_index, index], cwd=repo.home)
        add = ("-c", "core.safecrlf=false", "add", "--all")
        added = copied.exit_code == 0 and (
            (await repo.git(*add, env=env, check=False, timeout=_DIFF_TIMEOUT)).exit_code == 0
        )
        if not added:
            # From HEAD's tree, not from nothing: tracked files matching .gitignore would
            # otherwise read as deleted.
            await repo.run(["rm", "-f", "--", index, f"{index}.lock"], cwd=repo.home)
            await repo.git("read-tree", "HEAD", env=env)
            await repo.git(*add, env=env, timeout=_DIFF_TIMEOUT)
        await repo.git(
            "--no-optional-locks",
            "-c", "core.quotePath=false",
            "diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv",
            "-M", "--src-prefix=a/", "--dst-prefix=b/", "--no-relative",
            f"--output={output}", base_sha, "--",
            env=env,
            timeout=_DIFF_TIMEOUT,
        )  # fmt: skip
        return await repo.provider.read_file(
            repo.sandbox_id, output, limit=max_bytes + len(FILE_HEADER)
        )
    except FileNotFoundError as exc:
        raise GitOpError("git diff wrote no output") from exc
    finally:
        await repo.run(["rm", "-f", "--", index, f"{index}.lock", output], cwd=repo.home)
