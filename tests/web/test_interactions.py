"""Interactions of the web client in real Chromium against the live stack: reordering
repositories by mouse and keyboard, per-branch drafts, queued messages, the Markdown
renderer's safety, and the settings forms."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Locator, Page, Request, Route, expect

from tests.web.conftest import (
    TURN_TIMEOUT_MS,
    Pages,
    Stack,
    agent_articles,
    api_branch,
    api_repo,
    bare_repo,
    conversation,
    dialog,
    is_focused,
    needs_browser,
    needs_sandbox,
    open_app,
    open_branch,
    open_drawer,
    reply_text,
    send,
    set_anthropic_key,
    sidebar,
    transcript,
    user_articles,
    wait_turns_done,
)

pytestmark = [needs_browser, needs_sandbox, pytest.mark.timeout(420)]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def _eventually(
    read: Callable[[], Awaitable[Any]], expected: Any, what: str, timeout: float = 15
) -> None:
    """Until `read()` answers `expected`; fails with the last answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = await read()
    while last != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.25)
        last = await read()
    assert last == expected, f"{what}: expected {expected!r}, last {last!r}"


def _record_requests(page: Page, method: str, pattern: str) -> list[str]:
    """URLs of the page's requests with `method` whose path matches `pattern`, as they go."""
    seen: list[str] = []
    matcher = re.compile(pattern)

    def on_request(request: Request) -> None:
        if request.method == method and matcher.search(request.url):
            seen.append(request.url)

    page.on("request", on_request)
    return seen


# --- 1. repository order ---------------------------------------------------------------------


async def _add_repos(stack: Stack, count: int) -> list[dict[str, Any]]:
    added = []
    for index in range(count):
        path = bare_repo(stack.scratch, _unique(f"order{index}"))
        created = await stack.api.post("/api/repos", json={"url": str(path)})
        assert created.status_code == 201, created.text
        added.append(dict(created.json()))
    return added


async def _api_order(stack: Stack, names: list[str]) -> list[str]:
    repos = (await stack.api.get("/api/repos")).json()
    return [r["name"] for r in repos if r["name"] in names]


async def _shown_order(page: Page, names: list[str]) -> list[str]:
    shown = await sidebar(page).locator(".repo-toggle .repo-name").all_inner_texts()
    return [name.strip() for name in shown if name.strip() in names]


def _toggle(page: Page, name: str) -> Locator:
    return sidebar(page).get_by_role("button", name=name, exact=True)


async def test_repositories_reorder_by_drag_and_by_keyboard(stack: Stack, pages: Pages) -> None:
    repos = await _add_repos(stack, 3)
    a, b, c = (r["name"] for r in repos)
    names = [a, b, c]
    try:
        assert await _api_order(stack, names) == [a, b, c]
        page = await pages.open()
        await open_app(page)
        await open_drawer(page)
        for name in names:
            await expect(_toggle(page, name)).to_be_visible()
        assert await _shown_order(page, names) == [a, b, c]

        # Mouse: drag c's row onto the top half of a's row (drop before a).
        rows = sidebar(page).locator(".repo-row")
        source = rows.filter(has=page.get_by_role("button", name=c, exact=True))
        target = rows.filter(has=page.get_by_role("button", name=a, exact=True))
        await source.drag_to(target, target_position={"x": 20, "y": 3})
        await _eventually(lambda: _shown_order(page, names), [c, a, b], "sidebar after the drag")
        await _eventually(lambda: _api_order(stack, names), [c, a, b], "GET /api/repos after drag")
        await page.reload()
        await open_drawer(page)
        await expect(_toggle(page, c)).to_be_visible()
        await _eventually(lambda: _shown_order(page, names), [c, a, b], "sidebar after reload")

        # Keyboard: Alt+ArrowUp on b (last) → c, b, a; then Alt+ArrowDown on c → b, c, a.
        toggle_b = _toggle(page, b)
        await toggle_b.focus()
        await page.keyboard.press("Alt+ArrowUp")
        await _eventually(lambda: _shown_order(page, names), [c, b, a], "sidebar after Alt+Up")
        assert await is_focused(toggle_b), "the moved repository's toggle lost focus"
        await _eventually(lambda: _api_order(stack, names), [c, b, a], "API after Alt+Up")
        # Neither a toggle nor a collapse: the keys only moved the repository.
        await expect(toggle_b).to_have_attribute("aria-expanded", "true")

        toggle_c = _toggle(page, c)
        await toggle_c.focus()
        await page.keyboard.press("Alt+ArrowDown")
        await _eventually(lambda: _shown_order(page, names), [b, c, a], "sidebar after Alt+Down")
        assert await is_focused(toggle_c), "the moved repository's toggle lost focus"
        await _eventually(lambda: _api_order(stack, names), [b, c, a], "API after Alt+Down")
        await page.reload()
        await open_drawer(page)
        await expect(_toggle(page, a)).to_be_visible()
        await _eventually(lambda: _shown_order(page, names), [b, c, a], "sidebar after reload")
    finally:
        for repo in repos:
            await stack.api.delete(f"/api/repos/{repo['id']}")


# --- 2. drafts ---------------------------------------------------------------------------------


async def test_drafts_are_kept_per_branch_and_shift_enter_adds_a_line(
    stack: Stack, pages: Pages
) -> None:
    await api_repo(stack)  # once, before two branches are made side by side
    first, second = await asyncio.gather(
        api_branch(stack, _unique("web/draft-a")), api_branch(stack, _unique("web/draft-b"))
    )
    page = await pages.open()
    posted = _record_requests(page, "POST", r"/api/branches/[^/]+/messages")
    await open_app(page)
    await open_branch(page, first["name"])
    composer = page.get_by_role("textbox", name="Message")
    await composer.click()
    await page.keyboard.type("first line")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("second line")
    draft_a = "first line\nsecond line"
    await expect(composer).to_have_value(draft_a)
    await expect(user_articles(page)).to_have_count(0)

    await open_branch(page, second["name"])
    await expect(page).to_have_url(re.compile(re.escape(second["id"])))
    composer = page.get_by_role("textbox", name="Message")
    await expect(composer).to_have_value("")  # A's draft does not follow to B
    await composer.click()
    await page.keyboard.type("draft for B")
    await expect(composer).to_have_value("draft for B")

    await page.reload()
    composer = page.get_by_role("textbox", name="Message")
    await expect(composer).to_have_value("draft for B")
    await open_branch(page, first["name"])
    await expect(page).to_have_url(re.compile(re.escape(first["id"])))
    await expect(page.get_by_role("textbox", name="Message")).to_have_value(draft_a)
    await open_branch(page, second["name"])
    await expect(page.get_by_role("textbox", name="Message")).to_have_value("draft for B")

    assert posted == [], f"a draft was sent: {posted}"
    for branch in (first, second):
        assert await transcript(stack, branch["id"]) == []


# --- 3. queued messages ----------------------------------------------------------------------

# One read of the page: the first reply's text and the second prompt's label, together.
SNAPSHOT_JS = """() => {
  const log = document.querySelector('[aria-label="Conversation"]');
  const agent = log.querySelector('article[aria-label="Agent"]');
  const users = log.querySelectorAll('article[aria-label="You"]');
  return [agent ? agent.textContent : '', users[1].querySelector('.message-label').textContent];
}"""


async def test_a_second_prompt_is_queued_while_the_first_runs(stack: Stack, pages: Pages) -> None:
    await set_anthropic_key(stack)
    branch = await api_branch(stack, _unique("web/queue"))
    page = await pages.open()
    await open_app(page)
    await open_branch(page, branch["name"])
    # Sent before the transcript has loaded, prompts vanish from view (see the test below).
    await expect(conversation(page).get_by_text("No messages yet")).to_be_visible()
    first, second = "the first of two prompts", "the second of two prompts"
    first_reply = f"I see 1 user messages. You said: {first}"
    second_reply = f"I see 2 user messages. You said: {second}"
    stack.model.slow_seconds = 8
    try:
        await send(page, first)
        await send(page, second)
        await expect(user_articles(page)).to_have_count(2)
        label_first = user_articles(page).nth(0).locator(".message-label")
        label_second = user_articles(page).nth(1).locator(".message-label")
        await expect(label_second).to_have_text("Queued")
        await expect(label_first).not_to_have_text("Queued")
        # While the first reply streams, the second still waits.
        await expect(agent_articles(page).first).to_contain_text("I see", timeout=TURN_TIMEOUT_MS)
        first_text, second_label = await page.evaluate(SNAPSHOT_JS)
        assert first_reply not in " ".join(first_text.split()), (
            "the first reply was complete already: the test proves nothing"
        )
        assert second_label == "Queued", (first_text, second_label)
        # Its turn starts: the label goes, and the second reply appears under it.
        await expect(label_second).to_have_text("", timeout=TURN_TIMEOUT_MS)
        await expect(agent_articles(page)).to_have_count(2)
        await expect(agent_articles(page).first).to_contain_text(first_reply)
        await expect(agent_articles(page).last).to_contain_text(
            second_reply, timeout=TURN_TIMEOUT_MS
        )
        messages = await wait_turns_done(stack, branch["id"], 2)
    finally:
        stack.model.slow_seconds = 0
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [reply_text(m) for m in messages if m["role"] == "assistant"] == [
        first_reply,
        second_reply,
    ]
    for _ in range(2):  # live, then after a reload
        await expect(agent_articles(page)).to_have_count(2)
        await expect(agent_articles(page).last).to_contain_text(second_reply)
        shown = " ".join((await conversation(page).inner_text()).split())
        assert shown.count(first_reply) == 1, shown
        assert shown.count(second_reply) == 1, shown
        await expect(
            user_articles(page).locator(".message-label", has_text="Queued")
        ).to_have_count(0)
        await page.reload()
        await expect(page.get_by_role("textbox", name="Message")).to_be_visible()


async def test_prompts_sent_while_the_conversation_loads_stay_shown(
    stack: Stack, pages: Pages
) -> None:
    await set_anthropic_key(stack)
    branch = await api_branch(stack, _unique("web/early"))
    page = await pages.open()
    await open_app(page)
    held = asyncio.Event()

    async def hold_first_transcript(route: Route) -> None:
        """The first transcript is read at once but reaches the page 3 s late."""
        if route.request.method != "GET" or held.is_set():
            await route.fallback()
            return
        held.set()
        response = await route.fetch()
        await asyncio.sleep(3)
        await route.fulfill(response=response)

    await page.route(re.compile(r"/api/branches/[^/?]+/messages$"), hold_first_transcript)
    stack.model.slow_seconds = 8
    try:
        await open_branch(page, branch["name"])
        loading = conversation(page).get_by_text("Loading conversation…")
        await expect(loading).to_be_visible()
        await send(page, "sent while loading, one")
        await send(page, "sent while loading, two")
        await expect(user_articles(page)).to_have_count(2)
        await expect(loading).to_have_count(0, timeout=10_000)
        second = user_articles(page).filter(has_text="sent while loading, two")
        await expect(second.locator(".message-label")).to_have_text("Queued", timeout=3_000)
        await expect(user_articles(page)).to_have_count(2, timeout=1_000)
    finally:
        try:
            await wait_turns_done(stack, branch["id"], 2)
        finally:
            stack.model.slow_seconds = 0


# --- 4. Markdown -------------------------------------------------------------------------------

HOSTILE_MARKDOWN = """# Release notes

- first item with `inline_code()`
- second item

```python
def greet(name):
    return 'hi ' + name
```

A [x](javascript:alert(1)) link and a [safe](https://example.com/a) one.

<img src=x onerror="window.__pwned = 'img'; alert(1)">

<script>window.__pwned = 'script'</script>
"""

RENDER_JS = """async (source) => {
  const { renderMarkdown } = await import('/static/js/markdown.js');
  const host = document.createElement('div');
  host.id = 'md-probe';
  host.appendChild(renderMarkdown(source));
  document.body.appendChild(host);
  await new Promise((resolve) => setTimeout(resolve, 300));  // an onerror would have run
  const texts = (selector) => [...host.querySelectorAll(selector)].map((n) => n.textContent);
  return {
    headings: texts('h1, h2, h3, h4, h5, h6'),
    items: texts('ul > li'),
    inline: texts('code.md-inline-code'),
    blocks: [...host.querySelectorAll('pre > code')].map((n) => n.className),
    keywords: texts('pre code .tok-keyword'),
    strings: texts('pre code .tok-string'),
    hrefs: [...host.querySelectorAll('a')].map((a) => a.getAttribute('href')),
    linkTexts: texts('a'),
    dangerous: host.querySelectorAll('img, script, iframe, object, embed, [onerror]').length,
    text: host.textContent,
    pwned: window.__pwned ?? null,
  };
}"""


async def test_markdown_renders_code_and_neutralises_html_and_links(
    stack: Stack, pages: Pages
) -> None:
    page = await pages.open()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await open_app(page)
    out = await page.evaluate(RENDER_JS, HOSTILE_MARKDOWN)

    assert out["headings"] == ["Release notes"], out
    assert out["items"] == ["first item with inline_code()", "second item"], out
    assert out["inline"] == ["inline_code()"], out
    assert out["blocks"] == ["language-python"], out
    assert {"def", "return"} <= set(out["keywords"]), out
    assert "'hi '" in out["strings"], out

    # The javascript: link is plain text; the https one stays a link.
    assert out["hrefs"] == ["https://example.com/a"], out
    assert out["linkTexts"] == ["safe"], out
    assert not any(str(h).lower().startswith("javascript:") for h in out["hrefs"] if h)
    assert "A x link" in " ".join(out["text"].split()), out["text"]

    # Raw HTML is shown as text, never made into elements, and nothing ran.
    assert out["dangerous"] == 0, out
    assert "<img src=x onerror=\"window.__pwned = 'img'; alert(1)\">" in out["text"]
    assert "<script>window.__pwned = 'script'</script>" in out["text"]
    assert out["pwned"] is None and dialogs == [], (out["pwned"], dialogs)
    probe = page.locator("#md-probe")
    await expect(probe.locator("img, script")).to_have_count(0)
    await expect(probe).to_contain_text("<script>")


# --- 5. settings -------------------------------------------------------------------------------


async def _open_settings(page: Page) -> None:
    await open_drawer(page)
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_label("Sandbox auto-stop (minutes)")).to_be_visible()


async def test_sandbox_settings_save_and_reject_out_of_range(stack: Stack, pages: Pages) -> None:
    before = (await stack.api.get("/api/me/settings")).json()
    page = await pages.open()
    patches = _record_requests(page, "PATCH", r"/api/me/settings")
    try:
        await open_app(page)
        await _open_settings(page)
        auto_stop = page.get_by_label("Sandbox auto-stop (minutes)")
        loop_cap = page.get_by_label("Default loop cap")
        await auto_stop.fill("7")
        await loop_cap.fill("4")
        await page.get_by_role("button", name="Save settings").click()
        await _eventually(lambda: _settings(stack), (7, 4), "GET /api/me/settings after save")
        assert len(patches) == 1, patches

        await page.reload()
        await expect(page.get_by_label("Sandbox auto-stop (minutes)")).to_have_value("7")
        await expect(page.get_by_label("Default loop cap")).to_have_value("4")

        auto_stop = page.get_by_label("Sandbox auto-stop (minutes)")
        await auto_stop.fill("30")
        await page.get_by_role("button", name="Save settings").click()
        message = page.get_by_text(re.compile(r"auto-stop \(minutes\) must be .*5 to 20"))
        await expect(message).to_be_visible()
        await expect(auto_stop).to_have_attribute("aria-invalid", "true")
        await expect(auto_stop).to_be_focused()
        await asyncio.sleep(1)  # a PATCH, if one were sent, has had time to land
        assert len(patches) == 1, f"an out-of-range value was sent: {patches}"
        assert await _settings(stack) == (7, 4)

        # Corrected, the message goes and the value is saved.
        await auto_stop.fill("9")
        await page.get_by_role("button", name="Save settings").click()
        await expect(message).to_be_hidden()
        await _eventually(lambda: _settings(stack), (9, 4), "GET /api/me/settings after fix")
    finally:
        restored = await stack.api.patch(
            "/api/me/settings",
            json={
                "sandbox_auto_stop_minutes": before["sandbox_auto_stop_minutes"],
                "default_loop_max_iterations": before["default_loop_max_iterations"],
            },
        )
        assert restored.status_code == 200, restored.text


async def _settings(stack: Stack) -> tuple[int, int]:
    got = (await stack.api.get("/api/me/settings")).json()
    return got["sandbox_auto_stop_minutes"], got["default_loop_max_iterations"]


async def test_repository_environment_value_is_write_only(stack: Stack, pages: Pages) -> None:
    path = bare_repo(stack.scratch, _unique("envrepo"))
    created = await stack.api.post("/api/repos", json={"url": str(path)})
    assert created.status_code == 201, created.text
    repo = created.json()
    name, secret = "WEB_TEST_TOKEN", f"value-{uuid.uuid4().hex}"
    try:
        page = await pages.open()
        await open_app(page)
        await _open_settings(page)
        await page.get_by_label("Repository", exact=True).select_option(label=repo["name"])
        await expect(page.get_by_text("No variables set.")).to_be_visible()
        await page.get_by_label("Variable name").fill(name)
        await page.get_by_label("Value", exact=True).fill(secret)
        await page.get_by_role("button", name="Save variable").click()

        item = page.get_by_role("listitem").filter(
            has=page.locator("code", has_text=re.compile(rf"^{name}$"))
        )
        await expect(item).to_be_visible()
        await expect(page.get_by_label("Value", exact=True)).to_have_value("")
        await expect(page.get_by_label("Variable name")).to_have_value("")
        shown = (await stack.api.get(f"/api/repos/{repo['id']}")).json()
        assert shown["env_keys"] == [name] and secret not in str(shown)
        await _assert_not_in_page(page, secret)

        await page.reload()
        await page.get_by_label("Repository", exact=True).select_option(label=repo["name"])
        await expect(item).to_be_visible()
        await _assert_not_in_page(page, secret)

        await item.get_by_role("button", name="Delete").click()
        box = dialog(page)
        await expect(box).to_contain_text(name)
        await box.get_by_role("button", name="Delete").click()
        await expect(box).to_be_hidden()
        await expect(item).to_have_count(0)
        await expect(page.get_by_text("No variables set.")).to_be_visible()
        await _eventually(
            lambda: _env_keys(stack, repo["id"]), [], "env_keys after the delete", timeout=10
        )
    finally:
        await stack.api.delete(f"/api/repos/{repo['id']}")


async def _env_keys(stack: Stack, repo_id: str) -> list[str]:
    return list((await stack.api.get(f"/api/repos/{repo_id}")).json()["env_keys"])


async def _assert_not_in_page(page: Page, secret: str) -> None:
    assert secret not in await page.content()
    values = await page.locator("input").evaluate_all("(nodes) => nodes.map((n) => n.value)")
    assert secret not in values
