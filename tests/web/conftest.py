"""Web client tests: the API and a worker as subprocesses on loopback (local mode, so the
browser is the local admin), headless Chromium driven by Playwright, fake model and GitHub.

One live stack serves the whole package; tests make branches of their own. Helpers here
address the UI only by the accessible names agreed with the web client (see the issue)."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    async_playwright,
    expect,
)
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from db.migrate import upgrade_to_head
from sandboxes.local import LocalSandboxProvider
from security.crypto import generate_key
from tests.conftest import _git, free_port
from tests.fakes.github import FakeGitHub
from tests.fakes.model_server import FakeModelServer
from tests.workflows.conftest import TOOLS_DIR, ServiceProcess, WorkerProcess
from tests.workflows.helpers import wait_for_status

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM = shutil.which("chromium")

needs_browser = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install chromium); "
    "Playwright drives the system browser and never downloads one",
)
needs_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed: agent turns need real sandboxes",
)

Device = Literal["desktop", "mobile"]
Scheme = Literal["light", "dark"]
DEVICES: dict[Device, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "mobile": {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True},
}
COMBINATIONS: list[tuple[Device, Scheme]] = [
    ("desktop", "light"),
    ("desktop", "dark"),
    ("mobile", "light"),
    ("mobile", "dark"),
]

# Actions and assertions fail after this long unless a call says otherwise; agent turns pass
# their own, longer, bound.
UI_TIMEOUT_MS = 15_000
TURN_TIMEOUT_MS = 150_000
expect.set_options(timeout=UI_TIMEOUT_MS)

GITHUB_OWNER, GITHUB_REPO = "alice", "app"
SHOTS: list[Path] = []


# --- the live stack ------------------------------------------------------------------------


@dataclass
class Stack:
    url: str
    api: httpx.AsyncClient  # unauthenticated from loopback: the local admin, as the browser
    model: FakeModelServer
    github: FakeGitHub
    github_token: str
    settings: Settings
    scratch: Path
    logs: list[Path]
    state: dict[str, Any] = field(default_factory=dict)  # what one test leaves for another

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {log.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _admin_url(server_url: str) -> str:
    return _libpq(server_url.rpartition("/")[0] + "/postgres")


async def _wait_healthy(url: str, api: ServiceProcess, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    last = "no answer"
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while asyncio.get_running_loop().time() < deadline:
            assert api.process is not None
            if api.process.poll() is not None:
                raise AssertionError(
                    f"the API exited with {api.process.returncode}:\n"
                    + api.log.read_text(errors="replace")[-4000:]
                )
            try:
                response = await client.get("/api/health")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            await asyncio.sleep(0.25)
    raise AssertionError(f"the API at {url} was not healthy within {timeout}s; last: {last}")


@pytest.fixture(scope="package")
async def stack(
    postgres_server_url: str,
    temporal_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """A database of its own (other packages truncate theirs), a task queue of its own."""
    scratch = tmp_path_factory.mktemp("web")
    name = f"upstream_web_{uuid.uuid4().hex[:12]}"
    admin = _admin_url(postgres_server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{postgres_server_url.rpartition('/')[0]}/{name}"
    await asyncio.to_thread(upgrade_to_head, database_url)

    github = FakeGitHub(scratch / "github")
    github.start()
    token = github.add_user(GITHUB_OWNER, name="Alice")
    github.create_repo(GITHUB_OWNER, GITHUB_REPO, files={"README.md": "hello\n"})
    model = FakeModelServer()
    model.__enter__()

    settings = Settings(
        data_dir=scratch / "data",
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        encryption_key=generate_key(),
        task_queue=f"tq-web-{uuid.uuid4()}",
        host="127.0.0.1",
        port=free_port(),
        github_url=github.url,
        github_api_url=github.api_url,
    ).model_copy(update={"tools_dir_override": TOOLS_DIR})  # agent CLIs, shared by all runs
    settings.data_dir.mkdir(parents=True)
    url = f"http://127.0.0.1:{settings.port}"
    api_process = ServiceProcess("api", settings, scratch / "api.log")
    worker = WorkerProcess(settings, scratch / "worker.log")
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        api_process.start()
        worker.start()
        await _wait_healthy(url, api_process)
        yield Stack(
            url=url,
            api=client,
            model=model,
            github=github,
            github_token=token,
            settings=settings,
            scratch=scratch,
            logs=[api_process.log, scratch / "worker.log"],
        )
    finally:
        await client.aclose()
        api_process.stop()
        worker.stop()
        provider = LocalSandboxProvider(settings.sandboxes_dir)
        if settings.sandboxes_dir.exists():
            for entry in settings.sandboxes_dir.iterdir():
                if not entry.name.startswith("."):  # the provider's own bookkeeping
                    await provider.delete(entry.name)
        model.__exit__(None, None, None)
        github.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's own sandbox cannot start.
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


class Pages:
    """Browser contexts of one test. Every page records console errors and uncaught page
    errors; `assert_clean` (also run at teardown) fails the test on any."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self._browser = browser
        self._base_url = base_url
        self._contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    async def open(self, device: Device = "desktop", scheme: Scheme = "light") -> Page:
        context = await self._browser.new_context(
            base_url=self._base_url, color_scheme=scheme, **DEVICES[device]
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        self._contexts.append(context)
        page = await context.new_page()
        label = f"{device}/{scheme}"

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                where = message.location.get("url", "")
                self.errors.append(f"[{label}] console error: {message.text} ({where})")

        def on_page_error(error: Error) -> None:
            self.errors.append(f"[{label}] page error: {error.message}\n{error.stack or ''}")

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        return page

    def assert_clean(self) -> None:
        errors, self.errors = self.errors, []
        assert not errors, "the browser reported errors:\n" + "\n".join(errors)

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()
        self._contexts.clear()


@pytest.fixture
async def pages(browser: Browser, stack: Stack) -> AsyncIterator[Pages]:
    opened = Pages(browser, stack.url)
    try:
        yield opened
    finally:
        await opened.close()
    opened.assert_clean()


async def shoot(page: Page, name: str) -> Path:
    """A screenshot under test-artifacts/web/ (listed in the run's summary)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=path, animations="disabled")
    SHOTS.append(path)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SHOTS:
        terminalreporter.write_line(
            f"web client screenshots: {len(SHOTS)} written to {ARTIFACTS.relative_to(ROOT)}/"
        )


# --- git fixtures and API shortcuts ----------------------------------------------------------


def bare_repo(parent: Path, name: str) -> Path:
    """A bare repository with `main` (default) and `develop`, addressed by local path."""
    work = parent / f"{name}-seed"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "README.md").write_text("hello\n")
    _git(work, "add", "README.md")
    _git(work, "commit", "-q", "-m", "initial")
    _git(work, "branch", "develop")
    bare = parent / f"{name}.git"
    _git(parent, "clone", "-q", "--bare", str(work), str(bare))
    return bare


async def set_anthropic_key(stack: Stack) -> None:
    put = await stack.api.put(
        "/api/me/credentials/anthropic",
        json={"api_key": "sk-ant-web-test-0000", "base_url": stack.model.base_url},
    )
    assert put.status_code == 200, put.text


async def api_repo(stack: Stack) -> dict[str, Any]:
    """The local repository the API-made branches live in (added once per stack)."""
    if "repo" not in stack.state:
        path = bare_repo(stack.scratch, "shared")
        created = await stack.api.post("/api/repos", json={"url": str(path)})
        assert created.status_code == 201, created.text
        stack.state["repo"] = created.json()
    return dict(stack.state["repo"])


async def api_branch(stack: Stack, name: str) -> dict[str, Any]:
    """A branch made through the API, idle with a live sandbox."""
    repo = await api_repo(stack)
    created = await stack.api.post(f"/api/repos/{repo['id']}/branches", json={"name": name})
    assert created.status_code == 201, created.text
    branch = dict(created.json())
    await wait_for_status(stack.api, branch["id"], "idle", timeout=120)
    return branch


async def transcript(stack: Stack, branch_id: str) -> list[dict[str, Any]]:
    response = await stack.api.get(f"/api/branches/{branch_id}/messages")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


async def wait_turns_done(
    stack: Stack, branch_id: str, replies: int, timeout: float = 150
) -> list[dict[str, Any]]:
    """Until the branch is idle with `replies` assistant messages in its transcript."""
    deadline = asyncio.get_running_loop().time() + timeout
    messages: list[dict[str, Any]] = []
    branch: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        branch = (await stack.api.get(f"/api/branches/{branch_id}")).json()
        messages = await transcript(stack, branch_id)
        replied = [m for m in messages if m["role"] == "assistant"]
        failed = [m for m in replied if m["status"] in ("failed", "cancelled")]
        assert not failed, f"a turn on branch {branch_id} did not succeed: {failed}"
        done = [m for m in replied if m["status"] == "succeeded"]
        if branch.get("status") == "idle" and len(done) >= replies:
            return messages
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"branch {branch_id} did not finish {replies} turn(s) in {timeout}s: status "
        f"{branch.get('status')}, transcript {messages}\n{stack.log_tail()}"
    )


def reply_text(message: dict[str, Any]) -> str:
    return "".join(b["text"] for b in message.get("blocks") or [] if b.get("type") == "text")


# --- the UI, by its agreed accessible names --------------------------------------------------


def sidebar(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Repositories")


def conversation(page: Page) -> Locator:
    return page.get_by_role("region", name="Conversation")


def dialog(page: Page) -> Locator:
    return page.get_by_role("dialog")


async def open_app(page: Page) -> None:
    response = await page.goto("/")
    assert response is not None and response.ok, f"GET / answered {response and response.status}"
    await expect(page.get_by_role("heading", level=1).first).to_be_visible()


async def open_drawer(page: Page) -> None:
    """On a narrow screen the sidebar is a drawer behind "Open menu"."""
    menu = page.get_by_role("button", name="Open menu")
    if await menu.is_visible() and not await in_viewport(page, sidebar(page)):
        await menu.click()
        await expect(sidebar(page)).to_be_visible()


async def in_viewport(page: Page, locator: Locator) -> bool:
    if not await locator.is_visible():
        return False
    box = await locator.bounding_box()
    size = page.viewport_size
    if box is None or size is None:
        return False
    return box["x"] + box["width"] > 1 and box["x"] < size["width"] - 1


def _named(page: Page, name: str) -> Locator:
    """A link or button whose accessible name starts with `name` (a status may follow)."""
    # "/" escaped too: Playwright writes the pattern into a /…/ selector unescaped.
    escaped = re.escape(name).replace("/", "\\/")
    pattern = re.compile(rf"^\s*{escaped}(?:\s|$)")
    return page.get_by_role("link", name=pattern).or_(page.get_by_role("button", name=pattern))


def branch_entry(page: Page, name: str) -> Locator:
    """The branch's item in the sidebar."""
    return sidebar(page).locator(_named(page, name)).first


async def open_branch(page: Page, name: str) -> None:
    await open_drawer(page)
    await branch_entry(page, name).click()
    await expect(page.get_by_role("textbox", name="Message")).to_be_visible()


def status_badge(page: Page, name: str) -> Locator:
    # The innermost list item holding the branch: a repository's item holds all of its own.
    item = sidebar(page).get_by_role("listitem").filter(has=_named(page, name)).last
    return item.locator(".status-badge[data-status]").first


def agent_articles(page: Page) -> Locator:
    return conversation(page).get_by_role("article", name="Agent")


def user_articles(page: Page) -> Locator:
    return conversation(page).get_by_role("article", name="You")


async def send(page: Page, text: str) -> None:
    composer = page.get_by_role("textbox", name="Message")
    await composer.fill(text)
    await composer.press("Enter")
    await expect(composer).to_have_value("")


HELLO_PROMPT = "create the file hello.txt with hi there"


async def hello_branch(stack: Stack) -> dict[str, Any]:
    """A branch whose one turn wrote hello.txt: the chat test's own when it ran, else made
    through the API, so each test also runs alone."""
    if "hello" not in stack.state:
        await set_anthropic_key(stack)
        branch = await api_branch(stack, "web/hello-api")
        sent = await stack.api.post(
            f"/api/branches/{branch['id']}/messages", json={"content": HELLO_PROMPT}
        )
        assert sent.status_code == 202, sent.text
        await wait_turns_done(stack, branch["id"], 1)
        stack.state["hello"] = branch
    return dict(stack.state["hello"])


# --- accessibility and appearance ------------------------------------------------------------

CONTROL_ROLES = {
    "button",
    "checkbox",
    "combobox",
    "link",
    "listbox",
    "menuitem",
    "menuitemcheckbox",
    "menuitemradio",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "tab",
    "textbox",
}


async def unnamed_controls(page: Page) -> list[str]:
    """Controls without an accessible name, as Chromium's accessibility tree computes it."""
    cdp = await page.context.new_cdp_session(page)
    try:
        tree = await cdp.send("Accessibility.getFullAXTree")
        found = []
        for node in tree["nodes"]:
            role = (node.get("role") or {}).get("value")
            name = str((node.get("name") or {}).get("value") or "").strip()
            if node.get("ignored") or role not in CONTROL_ROLES or name:
                continue
            described = f"{role} (no DOM node)"
            if node.get("backendDOMNodeId"):
                dom = await cdp.send(
                    "DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]}
                )
                attrs = dom["node"].get("attributes", [])
                pairs = " ".join(f'{k}="{v}"' for k, v in zip(attrs[::2], attrs[1::2], strict=True))
                described = f"{role}: <{dom['node']['localName']} {pairs}>"
            found.append(described)
        return found
    finally:
        await cdp.detach()


async def background_luminance(page: Page) -> float:
    """Relative luminance (0 black … 1 white) of the first opaque page background."""
    color = await page.evaluate(
        """() => {
          for (const el of [document.body, document.documentElement]) {
            const c = getComputedStyle(el).backgroundColor;
            if (c && c !== "transparent" && !/rgba\\(.*,\\s*0\\)$/.test(c)) return c;
          }
          return "rgb(255, 255, 255)";
        }"""
    )
    channels = [float(v) / 255 for v in re.findall(r"[\d.]+", str(color))[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


async def is_focused(locator: Locator) -> bool:
    return bool(await locator.evaluate("(node) => node === document.activeElement"))
