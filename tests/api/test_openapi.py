from __future__ import annotations

import httpx


async def test_openapi_document_lists_the_contract(api: httpx.AsyncClient) -> None:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/health": {"get"},
        "/api/me": {"get"},
        "/api/me/credentials": {"get"},
        "/api/me/credentials/{provider}": {"put", "delete"},
        "/api/me/settings": {"get", "patch"},
        "/api/repos": {"get", "post"},
        "/api/repos/{repo_id}": {"get", "patch", "delete"},
        "/api/repos/{repo_id}/branches": {"get", "post"},
        "/api/branches/{branch_id}": {"get", "patch", "delete"},
        "/api/agents": {"get"},
        "/api/tokens": {"get", "post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path


async def test_root_serves_the_web_client_under_a_strict_policy(api: httpx.AsyncClient) -> None:
    response = await api.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Upstream Agents" in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert (await api.get("/docs")).status_code == 200
    assert (await api.get("/static/does-not-exist.js")).status_code == 404
