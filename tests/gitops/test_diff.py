from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gitops.diff import (
    DiffFile,
    DiffLine,
    branch_diff,
    cut_to_whole_files,
    parse_unified_diff,
)
from gitops.errors import InvalidGitInput
from tests.gitops.conftest import BASE, NAME, OWNER, Workspace

# -- the parser -----------------------------------------------------------------------------

MODIFIED = """\
diff --git a/src/app.py b/src/app.py
index 1111111..2222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,4 +1,5 @@ def main():
 one
-two
+TWO
+2.5
 three
-- a line that was "-- a line"
@@ -10 +11 @@
-x
\\ No newline at end of file
+x
"""


def test_hunks_carry_old_and_new_line_numbers() -> None:
    [file] = parse_unified_diff(MODIFIED)
    assert (file.path, file.old_path, file.status, file.binary) == (
        "src/app.py",
        None,
        "modified",
        False,
    )
    assert (file.additions, file.deletions) == (3, 3)
    first, second = file.hunks
    assert first.header == "@@ -1,4 +1,5 @@ def main():"
    assert (first.old_start, first.old_lines, first.new_start, first.new_lines) == (1, 4, 1, 5)
    assert first.lines == [
        DiffLine("context", "one", 1, 1),
        DiffLine("delete", "two", 2, None),
        DiffLine("add", "TWO", None, 2),
        DiffLine("add", "2.5", None, 3),
        DiffLine("context", "three", 3, 4),
        # Counted as the hunk's last old line, not taken for a "--- " file header.
        DiffLine("delete", '- a line that was "-- a line"', 4, None),
    ]
    assert (second.old_start, second.old_lines, second.new_start, second.new_lines) == (
        10,
        1,
        11,
        1,
    )
    assert second.lines == [
        DiffLine("delete", "x", 10, None, no_newline_at_eof=True),
        DiffLine("add", "x", None, 11),
    ]


def test_new_deleted_renamed_copied_binary_and_mode_changes() -> None:
    text = """\
diff --git a/new file.txt b/new file.txt
new file mode 100644
index 0000000..3b18e51
--- /dev/null
+++ b/new file.txt\t
@@ -0,0 +1 @@
+hello
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
index 3b18e51..0000000
--- a/gone.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-a
-b
diff --git a/old name.md b/new name.md
similarity index 90%
rename from old name.md
rename to new name.md
index 1111111..2222222 100644
--- a/old name.md
+++ b/new name.md
@@ -1 +1 @@
-x
+y
diff --git a/a.txt b/c.txt
similarity index 100%
copy from a.txt
copy to c.txt
diff --git a/moved.bin b/dir/moved.bin
similarity index 100%
rename from moved.bin
rename to dir/moved.bin
diff --git a/img.png b/img.png
new file mode 100644
index 0000000..e69de29
Binary files /dev/null and b/img.png differ
diff --git a/run.sh b/run.sh
old mode 100644
new mode 100755
diff --git a/link b/link
deleted file mode 100644
index 1111111..0000000
--- a/link
+++ /dev/null
@@ -1 +0,0 @@
-target
diff --git a/link b/link
new file mode 120000
index 0000000..2222222
--- /dev/null
+++ b/link
@@ -0,0 +1 @@
+elsewhere
\\ No newline at end of file
"""
    files = {f.path: f for f in parse_unified_diff(text)}
    assert list(files) == [
        "new file.txt",
        "gone.txt",
        "new name.md",
        "c.txt",
        "dir/moved.bin",
        "img.png",
        "run.sh",
        "link",
    ]
    assert files["new file.txt"].status == "added"
    assert files["new file.txt"].hunks[0].lines == [DiffLine("add", "hello", None, 1)]
    gone = files["gone.txt"]
    assert (gone.status, gone.deletions, gone.additions) == ("deleted", 2, 0)
    assert [line.old_line for line in gone.hunks[0].lines] == [1, 2]
    renamed = files["new name.md"]
    assert (renamed.status, renamed.old_path, renamed.additions) == ("renamed", "old name.md", 1)
    assert (files["c.txt"].status, files["c.txt"].old_path) == ("copied", "a.txt")
    moved = files["dir/moved.bin"]
    assert (moved.status, moved.old_path, moved.hunks) == ("renamed", "moved.bin", [])
    image = files["img.png"]
    assert (image.status, image.binary, image.hunks) == ("added", True, [])
    mode = files["run.sh"]
    assert (mode.status, mode.old_mode, mode.new_mode) == ("modified", "100644", "100755")
    link = files["link"]
    assert (link.status, link.old_mode, link.new_mode) == ("type-changed", "100644", "120000")
    assert (link.additions, link.deletions, len(link.hunks)) == (1, 1, 2)


def test_quoted_paths_are_decoded() -> None:
    text = """\
diff --git "a/tab\\there" "b/tab\\there"
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ "b/tab\\there"
@@ -0,0 +1 @@
+x
diff --git "a/caf\\303\\251 \\"q\\".txt" "b/caf\\303\\251 \\"q\\".txt"
old mode 100644
new mode 100755
diff --git a/x.sh "b/x.sh"
old mode 100644
new mode 100755
"""
    files = parse_unified_diff(text)
    assert [f.path for f in files] == ["tab\there", 'café "q".txt', "x.sh"]


def _host_git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize("quote_path", ["true", "false"])
def test_real_git_output_with_awkward_names(tmp_path: Path, quote_path: str) -> None:
    names = ["plain.txt", "with space.txt", "tab\there.txt", "ünïcødé.txt", 'q"uote.txt', "a b/c d"]
    _host_git(tmp_path, "init", "-q")
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("one\n")
    (tmp_path / "rename me.txt").write_text("".join(f"line {i}\n" for i in range(20)))
    _host_git(tmp_path, "add", "-A")
    _host_git(tmp_path, "commit", "-q", "-m", "base")
    base = _host_git(tmp_path, "rev-parse", "HEAD").strip()
    for name in names:
        (tmp_path / name).write_text("one\ntwo\n")
    _host_git(tmp_path, "mv", "rename me.txt", "renamed ü.txt")
    _host_git(tmp_path, "commit", "-q", "-am", "change")
    text = _host_git(
        tmp_path, "-c", f"core.quotePath={quote_path}", "diff", "-M", "--no-color", base, "HEAD"
    )
    files = {f.path: f for f in parse_unified_diff(text)}
    assert set(files) == {*names, "renamed ü.txt"}
    for name in names:
        assert (files[name].status, files[name].additions) == ("modified", 1)
    renamed = files["renamed ü.txt"]
    assert (renamed.status, renamed.old_path) == ("renamed", "rename me.txt")


def test_a_cut_keeps_whole_files_only() -> None:
    one = b"diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\n"
    two = b"diff --git a/b b/b\n--- a/b\n+++ b/b\n@@ -1 +1 @@\n-x\n+y\n"
    data = one + two
    assert cut_to_whole_files(data, len(data)) == (data, False)
    assert cut_to_whole_files(data, len(data) - 1) == (one, True)
    assert cut_to_whole_files(data, len(one)) == (one, True)
    assert cut_to_whole_files(data, len(one) - 1) == (b"", True)


# -- against a real checkout ----------------------------------------------------------------


def _by_path(files: list[DiffFile]) -> dict[str, DiffFile]:
    return {f.path: f for f in files}


async def _index_state(workspace: Workspace) -> tuple[bytes, str]:
    index = (workspace.host_workdir / ".git" / "index").read_bytes()
    return index, await workspace.sh("git", "status", "--porcelain")


async def test_diff_covers_commits_uncommitted_and_untracked_files(workspace: Workspace) -> None:
    base = await workspace.git("rev-parse", "HEAD")
    long_doc = "".join(f"line {i}\n" for i in range(1, 31))
    await workspace.commit({"guide.md": long_doc, "docs/guide.md": None}, "rework docs")
    await workspace.commit({"logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary\x00"}, "logo")
    head = await workspace.git("rev-parse", "HEAD")
    # Mid-turn: a rename by the agent (staged), an edit, a new untracked file.
    await workspace.git("mv", "guide.md", "handbook.md")
    await workspace.write("src/app.py", "def main():\n    print('hello')\n    return 0\n")
    await workspace.write("notes/todo list.txt", "first\nsecond\n")
    await workspace.sh("rm", "README.md")
    before = await _index_state(workspace)

    result = await branch_diff(workspace.repo, BASE)

    assert (result.against, result.base_sha, result.head_sha) == (BASE, base, head)
    assert not result.truncated
    files = _by_path(result.files)
    assert set(files) == {
        "docs/guide.md",
        "handbook.md",
        "logo.png",
        "src/app.py",
        "notes/todo list.txt",
        "README.md",
    }
    assert files["README.md"].status == "deleted"
    assert files["docs/guide.md"].status == "deleted"
    assert (files["handbook.md"].status, files["handbook.md"].additions) == ("added", 30)
    assert files["logo.png"].binary and files["logo.png"].status == "added"
    todo = files["notes/todo list.txt"]
    assert todo.status == "added"
    assert todo.hunks[0].lines == [
        DiffLine("add", "first", None, 1),
        DiffLine("add", "second", None, 2),
    ]
    app = files["src/app.py"]
    assert (app.status, app.additions, app.deletions) == ("modified", 2, 1)
    assert [
        (line.kind, line.content, line.old_line, line.new_line) for line in app.hunks[0].lines
    ] == [
        ("context", "def main():", 1, 1),
        ("delete", "    print('hi')", 2, None),
        ("add", "    print('hello')", None, 2),
        ("add", "    return 0", None, 3),
    ]
    # The checkout's own index (and what the agent staged) is exactly as it was.
    assert await _index_state(workspace) == before
    assert workspace.credential_files() == []
    assert sorted(p.name for p in (workspace.host_home / ".upstream-git").iterdir()) == []


async def test_renames_are_detected_in_the_working_tree(workspace: Workspace) -> None:
    content = "".join(f"line {i}\n" for i in range(40))
    sha = await workspace.commit({"big.txt": content})
    await workspace.sh("mv", "big.txt", "moved.txt")
    await workspace.write("moved.txt", content + "one more\n")
    files = _by_path((await branch_diff(workspace.repo, sha)).files)
    moved = files["moved.txt"]
    assert (moved.status, moved.old_path, moved.additions, moved.deletions) == (
        "renamed",
        "big.txt",
        1,
        0,
    )
    assert moved.hunks[0].lines[-1] == DiffLine("add", "one more", None, 41)


async def test_against_another_branch_fetches_it_first(workspace: Workspace) -> None:
    # develop moves on the remote; the diff is from the merge base, so its change is not ours.
    workspace.server.commit_to(OWNER, NAME, "develop", {"develop.txt": "d\n"})
    ours = await workspace.commit({"ours.txt": "o\n"})
    result = await branch_diff(workspace.repo, "develop")
    assert [f.path for f in result.files] == ["ours.txt"]
    assert result.head_sha == ours
    develop = workspace.remote_sha("refs/heads/develop")
    assert await workspace.git("rev-parse", "origin/develop") == develop


async def test_against_a_sha_a_short_sha_and_a_tag(workspace: Workspace) -> None:
    first = await workspace.commit({"a.txt": "1\n"})
    await workspace.commit({"b.txt": "2\n"})
    await workspace.git("tag", "v1", first)
    for against in (first, first[:8], "v1"):
        result = await branch_diff(workspace.repo, against)
        assert (result.base_sha, [f.path for f in result.files]) == (first, ["b.txt"])


async def test_bad_against_is_invalid_input(workspace: Workspace) -> None:
    for against in ("-p", "--output=/tmp/x", "a..b", "HEAD~1", "main:README.md", "x\ny", ""):
        with pytest.raises(InvalidGitInput):
            await branch_diff(workspace.repo, against)
    with pytest.raises(InvalidGitInput, match="no branch, tag or commit"):
        await branch_diff(workspace.repo, "no-such-branch")
    with pytest.raises(InvalidGitInput):
        await branch_diff(workspace.repo, "0123abcd" * 5)


async def test_a_large_diff_is_cut_between_files(workspace: Workspace) -> None:
    await workspace.commit(
        {f"f{i}.txt": "".join(f"{i} line {n}\n" for n in range(200)) for i in range(5)}
    )
    full = await branch_diff(workspace.repo, BASE)
    assert len(full.files) == 5 and not full.truncated
    cut = await branch_diff(workspace.repo, BASE, max_bytes=6000)
    assert cut.truncated
    assert 1 <= len(cut.files) < 5
    for file in cut.files:
        assert file.additions == 200  # no file is cut short
