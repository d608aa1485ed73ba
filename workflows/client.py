"""One way to reach Temporal, shared by the API, the worker, the CLI and the tests, so the data
converter and namespace cannot drift between them."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config.settings import Settings


async def build_temporal_client(settings: Settings, *, lazy: bool = False) -> Client:
    """`lazy=True` defers the connection to the first call: the API starts (and reports
    Temporal as down in /api/health) even while Temporal is unreachable."""
    return await Client.connect(
        settings.require_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
    )
