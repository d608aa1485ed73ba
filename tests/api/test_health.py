from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager

from api.app import create_app
from config.settings import Settings
from tests.conftest import free_port


async def test_health_reports_ok(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}


async def _health_with(settings: Settings, **broken: str) -> httpx.Response:
    """/api/health of an app whose settings point some servers at closed ports."""
    app = create_app(settings.model_copy(update=broken))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client,
    ):
        return await client.get("/api/health")


async def test_health_names_what_is_down(settings: Settings) -> None:
    response = await _health_with(
        settings,
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    assert response.status_code == 503
    body = response.json()
    assert body["database"].startswith("down")
    assert body["temporal"].startswith("down")
    assert body["detail"] == "database and temporal are down"


async def test_health_names_only_temporal_when_only_temporal_is_down(settings: Settings) -> None:
    response = await _health_with(settings, temporal_address=f"127.0.0.1:{free_port()}")
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["detail"] == "temporal is down"
