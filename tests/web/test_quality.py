"""Quality checks of the web client in real Chromium: keyboard use, accessible names, the
narrow-screen drawer, light and dark themes, and screenshots of every main view."""

from __future__ import annotations

from typing import Literal

import pytest
from playwright.async_api import Locator, Page, expect

from tests.web.conftest import (
    COMBINATIONS,
    Device,
    Pages,
    Scheme,
    Stack,
    agent_articles,
    api_repo,
    background_luminance,
    dialog,
    hello_branch,
    in_viewport,
    is_focused,
    needs_browser,
    needs_sandbox,
    open_app,
    open_branch,
    open_drawer,
    shoot,
    sidebar,
    unnamed_controls,
)

pytestmark = [needs_browser, needs_sandbox, pytest.mark.timeout(420)]

TABS = ("Chat", "Diff", "History")
GIT_ACTIONS = (
    "Push",
    "Merge base into branch",
    "Rebase onto base",
    "Reset…",
    "Tag…",
    "Rename…",
    "Delete remote branch",
)
SETTINGS_FIELDS = (
    "Anthropic API key",
    "Base URL",
    "GitHub token",
    "Sandbox auto-stop (minutes)",
    "Default loop cap",
)


async def _tab_to(page: Page, name: str, role: Literal["textbox", "button"], limit: int) -> int:
    """Press Tab until the control has focus; how many presses it took."""
    target = page.get_by_role(role, name=name, exact=True)
    for presses in range(1, limit + 1):
        await page.keyboard.press("Tab")
        if await is_focused(target):
            return presses
    raise AssertionError(f"{limit} presses of Tab never reached the {role} {name!r}")


async def _check_names(page: Page, view: str, problems: list[str]) -> None:
    problems.extend(f"{view}: {control}" for control in await unnamed_controls(page))


async def test_keyboard_reaches_the_composer_and_send(stack: Stack, pages: Pages) -> None:
    branch = await hello_branch(stack)
    page = await pages.open()
    await open_app(page)
    await open_branch(page, branch["name"])
    await page.reload()  # focus starts at the top of the document, as for a new visitor
    await expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    await _tab_to(page, "Message", "textbox", limit=150)
    await page.keyboard.type("draft")
    await _tab_to(page, "Send", "button", limit=15)
    pages.assert_clean()


async def test_escape_closes_a_dialog_and_focus_returns(stack: Stack, pages: Pages) -> None:
    repo = await api_repo(stack)
    page = await pages.open()
    await open_app(page)
    for opener_name in ("Add repository", f"New branch in {repo['name']}"):
        opener = page.get_by_role("button", name=opener_name)
        await opener.focus()
        await page.keyboard.press("Enter")
        await expect(dialog(page)).to_be_visible()
        assert not await is_focused(opener), "focus stayed behind the open dialog"
        await page.keyboard.press("Escape")
        await expect(dialog(page)).to_be_hidden()
        assert await is_focused(opener), f"focus did not return to {opener_name!r}"
    pages.assert_clean()


async def test_the_sidebar_is_a_drawer_on_a_phone(stack: Stack, pages: Pages) -> None:
    branch = await hello_branch(stack)
    page = await pages.open("mobile")
    await open_app(page)
    menu = page.get_by_role("button", name="Open menu")
    await expect(menu).to_be_visible()
    assert not await in_viewport(page, sidebar(page)), "the sidebar is open on a 375 px screen"
    await menu.click()
    await expect(sidebar(page)).to_be_visible()
    assert await in_viewport(page, sidebar(page)), "Open menu did not bring the sidebar in"
    await open_branch(page, branch["name"])
    await expect(agent_articles(page).first).to_contain_text("Done.")
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width} px wide)"
    pages.assert_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_theme_follows_the_system_and_the_theme_button(
    stack: Stack, pages: Pages, scheme: Scheme
) -> None:
    page = await pages.open("desktop", scheme)
    await open_app(page)
    luminance = await background_luminance(page)
    assert (luminance > 0.5) == (scheme == "light"), f"{scheme} scheme, luminance {luminance:.2f}"
    other = "dark" if scheme == "light" else "light"
    theme = page.get_by_role("button", name="Theme")
    for _ in range(3):  # it may cycle through "system" first
        await theme.click()
        if await page.evaluate("() => document.documentElement.dataset.theme") == other:
            break
    else:
        raise AssertionError(f"three presses of Theme never switched to {other}")
    switched = await background_luminance(page)
    assert (switched > 0.5) == (other == "light"), f"{other} theme, luminance {switched:.2f}"
    pages.assert_clean()


@pytest.mark.parametrize(("device", "scheme"), COMBINATIONS)
async def test_main_views_screenshots_and_accessible_names(
    stack: Stack, pages: Pages, device: Device, scheme: Scheme
) -> None:
    branch = await hello_branch(stack)
    repo = await api_repo(stack)
    page = await pages.open(device, scheme)
    suffix = f"{device}-{scheme}"
    problems: list[str] = []

    await open_app(page)
    await open_branch(page, branch["name"])
    reply = agent_articles(page).first
    await expect(reply).to_contain_text("Done.")
    tool = reply.locator("details.tool-call").first
    if not await tool.evaluate("(node) => node.open"):
        await tool.locator("summary").click()
    await shoot(page, f"chat-{suffix}")
    await _check_names(page, "chat", problems)

    for tab in ("Diff", "History"):
        await page.get_by_role("tab", name=tab).click()
        panel = page.get_by_role("tabpanel")
        await expect(panel).to_contain_text("hello.txt" if tab == "Diff" else "hello")
        await shoot(page, f"{tab.lower()}-{suffix}")
        await _check_names(page, tab.lower(), problems)
    await page.get_by_role("tab", name="Chat").click()

    for opener, view in (
        ("Add repository", "add-repository"),
        (f"New branch in {repo['name']}", "new-branch"),
    ):
        await open_drawer(page)
        await page.get_by_role("button", name=opener).click()
        await expect(dialog(page)).to_be_visible()
        await shoot(page, f"{view}-{suffix}")
        await _check_names(page, view, problems)
        await page.keyboard.press("Escape")
        await expect(dialog(page)).to_be_hidden()

    await open_drawer(page)
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_label("Anthropic API key")).to_be_visible()
    await expect(page.get_by_role("button", name="Save settings")).to_be_visible()
    await shoot(page, f"settings-{suffix}")
    await _check_names(page, "settings", problems)

    assert not problems, "controls without an accessible name:\n" + "\n".join(problems)
    pages.assert_clean()


async def _expect_names(
    missing: list[str], view: str, found: dict[str, Locator], timeout: float = 5_000
) -> None:
    for what, locator in found.items():
        try:
            await expect(locator.first).to_be_attached(timeout=timeout)
        except AssertionError:
            missing.append(f"{view}: {what}")


async def test_accessible_names_match_the_contract(stack: Stack, pages: Pages) -> None:
    """Exact names (Playwright matches substrings and ignores case unless told otherwise)."""
    branch = await hello_branch(stack)
    repo = await api_repo(stack)
    page = await pages.open()
    missing: list[str] = []
    await open_app(page)
    await open_branch(page, branch["name"])
    await expect(agent_articles(page).first).to_contain_text("Done.")

    def button(name: str) -> Locator:
        return page.get_by_role("button", name=name, exact=True)

    def field(name: str) -> Locator:
        # and_: an article's aria-label ("Agent") is a label too.
        return page.get_by_label(name, exact=True).and_(page.locator("input, select, textarea"))

    # ARIA makes a switch a kind of checkbox; either satisfies "Loop mode (checkbox)".
    loop_mode = page.get_by_role("checkbox", name="Loop mode", exact=True).or_(
        page.get_by_role("switch", name="Loop mode", exact=True)
    )
    await _expect_names(
        missing,
        "chat",
        {
            'nav "Repositories"': page.get_by_role("navigation", name="Repositories", exact=True),
            'region "Conversation"': page.get_by_role("region", name="Conversation", exact=True),
            'article "You"': page.get_by_role("article", name="You", exact=True),
            'article "Agent"': page.get_by_role("article", name="Agent", exact=True),
            "details.tool-call": page.locator("details.tool-call"),
            ".status-badge[data-status]": page.locator(".status-badge[data-status]"),
            'link "Settings"': page.get_by_role("link", name="Settings", exact=True),
            'checkbox "Loop mode"': loop_mode,
            **{
                f'button "{name}"': button(name)
                for name in (
                    "Add repository",
                    f"New branch in {repo['name']}",
                    "Send",
                    "Stop",
                    "Theme",
                    "Create pull request",
                    "Git actions",
                )
            },
            **{f'tab "{name}"': page.get_by_role("tab", name=name, exact=True) for name in TABS},
            **{f'input "{name}"': field(name) for name in ("Message", "Agent", "Model")},
            'input "Loop cap"': field("Loop cap"),
        },
    )

    await button("Git actions").click()
    await _expect_names(
        missing,
        "git actions menu",
        {
            f'menuitem "{name}"': page.get_by_role("menuitem", name=name, exact=True)
            for name in GIT_ACTIONS
        },
    )
    await page.keyboard.press("Escape")

    await page.get_by_role("tab", name="Diff").click()
    await _expect_names(missing, "diff", {'input "Compare against"': field("Compare against")})
    await page.get_by_role("tab", name="Chat").click()

    await button("Add repository").click()
    box = dialog(page)
    await box.get_by_role("tab", name="URL or path").click()
    await _expect_names(
        missing,
        "add repository",
        {
            'tab "URL or path"': box.get_by_role("tab", name="URL or path", exact=True),
            'tab "GitHub"': box.get_by_role("tab", name="GitHub", exact=True),
            'input "Repository URL or path"': box.get_by_label(
                "Repository URL or path", exact=True
            ),
            'button "Add"': box.get_by_role("button", name="Add", exact=True),
        },
    )
    await box.get_by_role("tab", name="GitHub").click()
    await _expect_names(
        missing,
        "add repository",
        {
            'input "Search your GitHub repositories"': box.get_by_label(
                "Search your GitHub repositories", exact=True
            )
        },
    )
    await page.keyboard.press("Escape")
    await expect(box).to_be_hidden()

    await button(f"New branch in {repo['name']}").click()
    box = dialog(page)
    await _expect_names(
        missing,
        "new branch",
        {
            **{
                f'input "{name}"': box.get_by_label(name, exact=True)
                for name in ("Branch name", "Base branch", "Agent", "Model")
            },
            'button "Create branch"': box.get_by_role("button", name="Create branch", exact=True),
        },
    )
    await page.keyboard.press("Escape")
    await expect(box).to_be_hidden()

    await page.get_by_role("link", name="Settings").click()
    await expect(field("Anthropic API key")).to_be_visible()
    await _expect_names(
        missing,
        "settings",
        {
            **{f'input "{name}"': field(name) for name in SETTINGS_FIELDS},
            'button "Save settings"': button("Save settings"),
        },
    )

    phone = await pages.open("mobile")
    await open_app(phone)
    await _expect_names(
        missing,
        "mobile",
        {'button "Open menu"': phone.get_by_role("button", name="Open menu", exact=True)},
    )
    assert not missing, "names of the UI contract not found:\n" + "\n".join(missing)
    pages.assert_clean()
