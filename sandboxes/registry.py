"""Pick the sandbox provider the settings ask for."""

from __future__ import annotations

from config.settings import Settings
from sandboxes.base import SandboxProvider, SandboxUnavailable
from sandboxes.local import LocalSandboxProvider


def build_provider(settings: Settings) -> SandboxProvider:
    """Raises SandboxUnavailable when the chosen provider cannot run on this host."""
    if settings.sandbox_provider == "local":
        return LocalSandboxProvider(
            settings.sandboxes_dir,
            unsafe=settings.unsafe_local_sandbox,
            tools_dir=settings.tools_dir,
        )
    if settings.sandbox_provider == "daytona":
        raise SandboxUnavailable("daytona provider is not available yet")
    raise SandboxUnavailable(f"unknown sandbox provider: {settings.sandbox_provider!r}")
