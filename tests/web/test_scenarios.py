"""The web client end to end: real Chromium against the live API and worker, the real
`claude` binary in bubblewrap sandboxes answering from the fake model, a fake GitHub."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.web.conftest import (
    GITHUB_OWNER,
    GITHUB_REPO,
    HELLO_PROMPT,
    TURN_TIMEOUT_MS,
    Pages,
    Stack,
    agent_articles,
    api_branch,
    bare_repo,
    branch_entry,
    conversation,
    dialog,
    hello_branch,
    needs_browser,
    needs_sandbox,
    open_app,
    open_branch,
    open_drawer,
    reply_text,
    send,
    set_anthropic_key,
    status_badge,
    transcript,
    user_articles,
    wait_turns_done,
)

pytestmark = [needs_browser, needs_sandbox, pytest.mark.timeout(420)]


def _squash(text: str) -> str:
    return " ".join(text.split())


async def _open_settings(page: Page) -> None:
    await open_drawer(page)
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_label("Anthropic API key")).to_be_visible()


async def _save_key(page: Page, label: str, key: str, base_url: str | None = None) -> None:
    """Fill a provider's key (and base URL) and submit its form with Enter."""
    field = page.get_by_label(label, exact=True)
    form = page.locator("form").filter(has=field)
    if base_url is not None:
        await form.get_by_label("Base URL").fill(base_url)
    await field.fill(key)
    await field.press("Enter")
    await expect(form).to_contain_text(key[-4:])
    await expect(field).to_have_value("")


async def _assert_secret_not_shown(page: Page, secret: str) -> None:
    assert secret not in await page.content()
    values = await page.locator("input").evaluate_all("(nodes) => nodes.map((n) => n.value)")
    assert secret not in values


async def test_local_mode_adds_a_repository_and_a_branch(stack: Stack, pages: Pages) -> None:
    page = await pages.open()
    await open_app(page)
    me = (await stack.api.get("/api/me")).json()
    assert me["auth_method"] == "local" and me["is_admin"] is True
    shown = me["name"] or me["login"]
    await expect(page.get_by_text(shown, exact=True).first).to_be_visible()

    path = bare_repo(stack.scratch, "web-one")
    await open_drawer(page)
    await page.get_by_role("button", name="Add repository").click()
    box = dialog(page)
    await box.get_by_role("tab", name="URL or path").click()
    await box.get_by_label("Repository URL or path").fill(str(path))
    await box.get_by_role("button", name="Add", exact=True).click()
    await expect(box).to_be_hidden()
    repos = (await stack.api.get("/api/repos")).json()
    repo = next((r for r in repos if r["url"].rstrip("/") == str(path)), None)
    assert repo is not None, f"{path} was not added: {repos}"

    await open_drawer(page)
    await page.get_by_role("button", name=f"New branch in {repo['name']}").click()
    box = dialog(page)
    await expect(box.get_by_label("Base branch")).to_have_value("main")
    await expect(box.get_by_label("Base branch")).to_be_enabled()
    await expect(box.get_by_label("Agent")).to_be_enabled()
    await box.get_by_label("Branch name").fill("web/first")
    await box.get_by_role("button", name="Create branch").click()
    await expect(box).to_be_hidden()

    await open_drawer(page)
    await expect(branch_entry(page, "web/first")).to_be_visible()
    badge = status_badge(page, "web/first")
    await expect(badge).to_have_attribute("data-status", "idle", timeout=120_000)
    branches = (await stack.api.get(f"/api/repos/{repo['id']}/branches")).json()
    assert [(b["name"], b["base_branch"], b["status"]) for b in branches] == [
        ("web/first", "main", "idle")
    ]


async def test_settings_key_then_a_streamed_reply_with_a_tool_call(
    stack: Stack, pages: Pages
) -> None:
    branch = await api_branch(stack, "web/chat")
    page = await pages.open()
    await open_app(page)
    await _open_settings(page)
    secret = "sk-ant-web-ui-key-9876"
    await _save_key(page, "Anthropic API key", secret, stack.model.base_url)
    await _assert_secret_not_shown(page, secret)
    await page.reload()
    await expect(page.get_by_text(re.compile(r"9876"))).to_be_visible()
    await _assert_secret_not_shown(page, secret)
    credentials = (await stack.api.get("/api/me/credentials")).json()
    anthropic = next(c for c in credentials if c["provider"] == "anthropic")
    assert anthropic["last4"] == "9876"
    assert anthropic["base_url"].rstrip("/") == stack.model.base_url

    await open_app(page)
    await open_branch(page, branch["name"])
    # Slowed so the reply is seen arriving while the turn still runs.
    stack.model.slow_seconds = 5
    try:
        await send(page, HELLO_PROMPT)
        await expect(user_articles(page)).to_have_count(1)
        await expect(user_articles(page).first).to_contain_text(HELLO_PROMPT)
        reply = agent_articles(page).last
        tool = reply.locator("details.tool-call")
        await expect(tool).to_have_count(1, timeout=TURN_TIMEOUT_MS)
        await expect(tool).to_contain_text(re.compile(r"write", re.IGNORECASE))
        await expect(page.get_by_role("button", name="Stop")).to_be_enabled()
        await expect(reply).not_to_contain_text("Done.")
        await expect(reply).to_contain_text("Done.", timeout=TURN_TIMEOUT_MS)
        await expect(page.get_by_role("button", name="Stop")).to_be_disabled(timeout=30_000)
    finally:
        stack.model.slow_seconds = 0

    messages = await wait_turns_done(stack, branch["id"], 1)
    call = next(b for b in messages[-1]["blocks"] if b["type"] == "tool_call")
    assert call["tool"] == "write" and call["result"]["is_error"] is False
    if not await tool.evaluate("(node) => node.open"):
        await tool.locator("summary").click()
    output = str(call["result"]["output"]).strip().splitlines()[0]
    await expect(tool).to_contain_text(output)
    await expect(agent_articles(page)).to_have_count(1)
    stack.state["hello"] = branch


async def test_reload_mid_turn_shows_the_whole_reply_once(stack: Stack, pages: Pages) -> None:
    await set_anthropic_key(stack)
    branch = await api_branch(stack, "web/reload")
    page = await pages.open()
    await open_app(page)
    await open_branch(page, branch["name"])
    prompt = "tell me a slow story about reloading pages"
    expected = f"I see 1 user messages. You said: {prompt}"
    stack.model.slow_seconds = 12
    try:
        await send(page, prompt)
        streaming = agent_articles(page).last
        await expect(streaming).to_contain_text("I see", timeout=TURN_TIMEOUT_MS)
        partial = _squash(await streaming.inner_text())
        state = (await stack.api.get(f"/api/branches/{branch['id']}")).json()["status"]
        assert expected not in partial and state == "running", (
            f"the reply was complete before the reload ({state}): the test proves nothing"
        )
        await page.reload()
        if not await page.get_by_role("textbox", name="Message").is_visible():
            await open_branch(page, branch["name"])
        messages = await wait_turns_done(stack, branch["id"], 1)
    finally:
        stack.model.slow_seconds = 0
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert reply_text(messages[-1]) == expected

    await expect(agent_articles(page)).to_have_count(1)
    await expect(agent_articles(page).first).to_contain_text(expected, timeout=30_000)
    await expect(user_articles(page)).to_have_count(1)
    shown = _squash(await conversation(page).inner_text())
    assert shown.count(expected) == 1, shown
    assert shown.count("I see") == 1, shown
    assert _squash(await agent_articles(page).first.inner_text()).count(expected) == 1


async def test_loop_mode_runs_to_finished(stack: Stack, pages: Pages) -> None:
    await set_anthropic_key(stack)
    branch = await api_branch(stack, "web/loop")
    page = await pages.open()
    await open_app(page)
    await open_branch(page, branch["name"])
    # The contract says checkbox; a switch is one too, as far as a user can tell.
    loop_mode = page.get_by_role("checkbox", name="Loop mode")
    await loop_mode.or_(page.get_by_role("switch", name="Loop mode")).check()
    cap = page.get_by_label("Loop cap")
    await cap.fill("5")
    await cap.press("Tab")
    stack.model._text_replies = 0
    stack.model.finish_after = 3
    # Slowed so each iteration lasts long enough to be seen.
    stack.model.slow_seconds = 3
    try:
        await send(page, "work until you are done")
        for iteration in (1, 2, 3):
            await expect(page.get_by_text(f"Iteration {iteration} of 5").first).to_be_visible(
                timeout=TURN_TIMEOUT_MS
            )
        await wait_turns_done(stack, branch["id"], 3, timeout=3 * TURN_TIMEOUT_MS / 1000)
    finally:
        stack.model.finish_after = None
        stack.model.slow_seconds = 0
    shown = (await stack.api.get(f"/api/branches/{branch['id']}")).json()
    assert shown["loop_enabled"] is True and shown["loop_max_iterations"] == 5
    loop = shown["loop"]
    assert (loop["stop_reason"], loop["iterations"], loop["max_iterations"]) == ("finished", 3, 5)
    # The loop's status line, not the agent's own "FINISHED" reply, names the stop reason.
    ended = page.get_by_role("status").filter(
        has_text=re.compile(r"loop ended|stopped", re.IGNORECASE)
    )
    await expect(ended.first).to_contain_text(
        re.compile(r"finished", re.IGNORECASE), timeout=30_000
    )
    await expect(ended.first).to_contain_text("3 of 5 iterations")
    await expect(agent_articles(page)).to_have_count(3)
    await expect(agent_articles(page).last).to_contain_text("FINISHED")


async def test_diff_tab_shows_the_added_file(stack: Stack, pages: Pages) -> None:
    branch = await hello_branch(stack)
    page = await pages.open()
    await open_app(page)
    await open_branch(page, branch["name"])
    await page.get_by_role("tab", name="Diff").click()
    panel = page.get_by_role("tabpanel")
    await expect(panel.get_by_label("Compare against")).to_be_visible()
    await expect(panel).to_contain_text("hello.txt")
    await expect(panel).to_contain_text("hi there")
    await expect(panel).to_contain_text(re.compile(r"added", re.IGNORECASE))
    diff = (await stack.api.get(f"/api/branches/{branch['id']}/diff")).json()
    assert [(f["path"], f["status"]) for f in diff["files"]] == [("hello.txt", "added")]


async def test_pull_request_against_github(stack: Stack, pages: Pages) -> None:
    await set_anthropic_key(stack)
    page = await pages.open()
    await open_app(page)
    await _open_settings(page)
    await _save_key(page, "GitHub token", stack.github_token)
    await _assert_secret_not_shown(page, stack.github_token)

    await open_app(page)
    await open_drawer(page)
    await page.get_by_role("button", name="Add repository").click()
    box = dialog(page)
    await box.get_by_role("tab", name="GitHub").click()
    await box.get_by_label("Search your GitHub repositories").fill(GITHUB_REPO)
    full_name = f"{GITHUB_OWNER}/{GITHUB_REPO}"
    await expect(box.get_by_text(full_name)).to_be_visible()
    await box.get_by_role("button", name="Add", exact=True).click()
    await expect(box).to_be_hidden()
    repos = (await stack.api.get("/api/repos")).json()
    repo = next((r for r in repos if r["github_full_name"] == full_name), None)
    assert repo is not None, repos

    await open_drawer(page)
    await page.get_by_role("button", name=f"New branch in {repo['name']}").click()
    box = dialog(page)
    await expect(box.get_by_label("Base branch")).to_be_enabled()
    await expect(box.get_by_label("Agent")).to_be_enabled()
    await box.get_by_label("Branch name").fill("web/pr")
    await box.get_by_role("button", name="Create branch").click()
    await expect(box).to_be_hidden()
    await open_drawer(page)
    await expect(status_badge(page, "web/pr")).to_have_attribute(
        "data-status", "idle", timeout=120_000
    )
    await open_branch(page, "web/pr")
    await send(page, "create the file greeting.txt with hello from the browser")
    await expect(agent_articles(page).last).to_contain_text("Done.", timeout=TURN_TIMEOUT_MS)
    branches = (await stack.api.get(f"/api/repos/{repo['id']}/branches")).json()
    branch = next(b for b in branches if b["name"] == "web/pr")
    await wait_turns_done(stack, branch["id"], 1)

    await page.get_by_role("button", name="Create pull request").click()
    box = dialog(page)
    await expect(box).to_be_visible()
    await box.get_by_role("button", name="Create pull request").click()
    link = page.get_by_role("link", name="Pull request #1").first
    await expect(link).to_be_visible(timeout=60_000)
    pulls = stack.github.pulls(GITHUB_OWNER, GITHUB_REPO)
    assert [(p["number"], p["head"]["ref"], p["base"]["ref"]) for p in pulls] == [
        (1, "web/pr", "main")
    ]
    assert await link.get_attribute("href") == pulls[0]["html_url"]
    shown = (await stack.api.get(f"/api/branches/{branch['id']}")).json()["pull_request"]
    assert shown["url"] == pulls[0]["html_url"]
    messages = await transcript(stack, branch["id"])
    assert [m["role"] for m in messages] == ["user", "assistant"]

    # The push after the turn and the pull request stay in the conversation after a reload,
    # each shown once.
    await page.reload()
    conversation = page.get_by_role("region", name="Conversation")
    await expect(agent_articles(page).last).to_contain_text("Done.")
    pushed = conversation.locator(".system-line", has_text=re.compile(r"pushed \w+ to web/pr"))
    await expect(pushed).to_have_count(1)
    opened = conversation.locator(".system-line", has_text="opened pull request #1")
    await expect(opened).to_have_count(1)
