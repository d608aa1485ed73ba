"""ensure_installed against a stand-in `npm` script (offline, fast)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agents.base import ToolPackage
from agents.tools import ToolInstallError, ensure_installed, install_prefix, installed_prefix

PACKAGE = ToolPackage("@acme/agent", "1.2.3", "node_modules/.bin/agent")

# Installs a bin that prints its version, like npm + a postinstall would. Behaviour knobs come
# from the environment; every call is counted in $NPM_CALLS.
FAKE_NPM = """#!/bin/sh
echo call >> "$NPM_CALLS"
sleep "${NPM_SLEEP:-0}"
if [ -n "$NPM_FAIL" ]; then echo "npm ERR! 404 Not Found - $NPM_FAIL" >&2; exit 1; fi
prefix=""
while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix="$2"; shift; done
mkdir -p "$prefix/node_modules/.bin"
printf '#!/bin/sh\\necho "%s"\\n' "${NPM_VERSION_OUTPUT:-1.2.3 (Agent)}" \\
    > "$prefix/node_modules/.bin/agent"
chmod +x "$prefix/node_modules/.bin/agent"
"""


@pytest.fixture
def npm_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(0o755)
    calls = tmp_path / "npm-calls"
    calls.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NPM_CALLS", str(calls))
    return calls


def _leftovers(tools: Path) -> list[str]:
    parent = tools / "acme__agent"
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


async def test_installs_once_with_progress(tmp_path: Path, npm_calls: Path) -> None:
    tools = tmp_path / "tools"
    assert installed_prefix(tools, PACKAGE) is None
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    prefix = await ensure_installed(tools, PACKAGE, progress=progress)
    assert prefix == tools / "acme__agent" / "1.2.3" == install_prefix(tools, PACKAGE)
    assert (prefix / "node_modules/.bin/agent").is_file()
    assert installed_prefix(tools, PACKAGE) == prefix
    assert lines[0] == "installing @acme/agent 1.2.3 from npm…"
    assert lines[-1].startswith("installed in ") and lines[-1].endswith(" s")
    assert await ensure_installed(tools, PACKAGE) == prefix
    assert npm_calls.read_text().count("call") == 1
    assert _leftovers(tools) == [".1.2.3.lock", "1.2.3"]  # no staging dir left behind


async def test_concurrent_installs_run_npm_once(
    tmp_path: Path, npm_calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPM_SLEEP", "0.5")
    tools = tmp_path / "tools"
    prefixes = await asyncio.gather(*(ensure_installed(tools, PACKAGE) for _ in range(3)))
    assert len(set(prefixes)) == 1
    assert npm_calls.read_text().count("call") == 1


async def test_npm_failure_raises_with_stderr_and_leaves_nothing(
    tmp_path: Path, npm_calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPM_FAIL", "@acme/agent@1.2.3")
    tools = tmp_path / "tools"
    with pytest.raises(ToolInstallError, match=r"exit 1\):\nnpm ERR! 404 Not Found"):
        await ensure_installed(tools, PACKAGE)
    assert _leftovers(tools) == [".1.2.3.lock"]
    assert installed_prefix(tools, PACKAGE) is None


async def test_a_binary_that_does_not_run_is_not_installed(
    tmp_path: Path, npm_calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What an install without the postinstall step looks like: a stub bin.
    monkeypatch.setenv("NPM_VERSION_OUTPUT", "agent native binary not installed")
    tools = tmp_path / "tools"
    with pytest.raises(ToolInstallError, match="postinstall"):
        await ensure_installed(tools, PACKAGE)
    assert _leftovers(tools) == [".1.2.3.lock"]


async def test_a_damaged_install_is_replaced(tmp_path: Path, npm_calls: Path) -> None:
    tools = tmp_path / "tools"
    prefix = await ensure_installed(tools, PACKAGE)
    (prefix / PACKAGE.binary).unlink()
    assert installed_prefix(tools, PACKAGE) is None
    assert await ensure_installed(tools, PACKAGE) == prefix
    assert (prefix / PACKAGE.binary).is_file()
    assert _leftovers(tools) == [".1.2.3.lock", "1.2.3"]


def test_names_are_sanitised(tmp_path: Path) -> None:
    assert install_prefix(tmp_path, PACKAGE).relative_to(tmp_path) == Path("acme__agent/1.2.3")
    with pytest.raises(ValueError):
        install_prefix(tmp_path, ToolPackage("@acme/agent", "../x", "bin"))
