"""The harness itself: the live stack serves `/` to real Chromium at every size and scheme,
without a console error, and screenshots land in test-artifacts/web/."""

from __future__ import annotations

import pytest

from tests.web.conftest import (
    COMBINATIONS,
    Device,
    Pages,
    Scheme,
    Stack,
    needs_browser,
    shoot,
    unnamed_controls,
)

pytestmark = needs_browser


@pytest.mark.parametrize(("device", "scheme"), COMBINATIONS)
async def test_the_client_loads_without_errors(
    stack: Stack, pages: Pages, device: Device, scheme: Scheme
) -> None:
    health = await stack.api.get("/api/health")
    assert health.json()["status"] == "ok", health.text
    page = await pages.open(device, scheme)
    response = await page.goto("/")
    assert response is not None and response.status == 200
    assert "Upstream" in await page.title()
    await page.wait_for_load_state("networkidle")
    path = await shoot(page, f"smoke-{device}-{scheme}")
    assert path.stat().st_size > 1000
    pages.assert_clean()


async def test_the_accessible_name_check_sees_unnamed_controls(pages: Pages) -> None:
    """The check the quality tests rely on is not vacuous."""
    page = await pages.open()
    await page.set_content(
        "<button>Named</button><button></button><label>Kept <input></label><input>"
        "<select><option>x</option></select><div hidden><button></button></div>"
    )
    found = await unnamed_controls(page)
    assert [line.split(":")[0] for line in found] == ["button", "textbox", "combobox"], found
