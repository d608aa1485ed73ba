"""Service settings, read from the environment (and `.env`) by pydantic-settings.

Every process (CLI, API, worker) builds one `Settings` and passes it down; nothing reads
`os.environ` elsewhere, so a child process started by `upstream up` sees exactly what its
parent resolved.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".upstream"


class ConfigurationError(RuntimeError):
    """A required setting is missing or unusable; the message says which and what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, validation_alias=AliasChoices("UPSTREAM_DATA_DIR", "data_dir")
    )
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("UPSTREAM_HOST", "host"))
    port: int = Field(
        default=8000, ge=1, le=65535, validation_alias=AliasChoices("UPSTREAM_PORT", "port")
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    temporal_address: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS", "temporal_address")
    )
    temporal_namespace: str = Field(
        default="default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "temporal_namespace")
    )
    task_queue: str = Field(
        default="upstream", validation_alias=AliasChoices("UPSTREAM_TASK_QUEUE", "task_queue")
    )

    # Active key first; old keys stay readable so stored secrets survive a rotation.
    encryption_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ENCRYPTION_KEY", "encryption_key")
    )
    encryption_old_keys: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ENCRYPTION_OLD_KEYS", "encryption_old_keys")
    )

    github_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_CLIENT_ID", "github_client_id")
    )
    github_client_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_CLIENT_SECRET", "github_client_secret")
    )

    # Public GitHub by default; GitHub Enterprise (or a test double) by pointing these elsewhere.
    github_url: str = Field(
        default="https://github.com", validation_alias=AliasChoices("GITHUB_URL", "github_url")
    )
    github_api_url: str = Field(
        default="https://api.github.com",
        validation_alias=AliasChoices("GITHUB_API_URL", "github_api_url"),
    )
    # Dev mode: sign in without OAuth as the owner of this token (never in production).
    github_pat: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_PAT", "github_pat")
    )
    environment: Literal["development", "production"] = Field(
        default="development", validation_alias=AliasChoices("UPSTREAM_ENV", "environment")
    )
    # Where browsers reach this service (OAuth redirect URI, cookie security); derived from
    # the request when unset.
    public_url: str | None = Field(
        default=None, validation_alias=AliasChoices("UPSTREAM_PUBLIC_URL", "public_url")
    )
    session_days: int = Field(
        default=14,
        ge=1,
        le=365,
        validation_alias=AliasChoices("UPSTREAM_SESSION_DAYS", "session_days"),
    )
    # Most branches a user signed in through GitHub may have; admins can change it per user.
    default_branch_quota: int = Field(
        default=50,
        ge=1,
        validation_alias=AliasChoices("UPSTREAM_BRANCH_QUOTA", "default_branch_quota"),
    )

    sandbox_provider: Literal["local", "daytona"] = Field(
        default="local",
        validation_alias=AliasChoices("UPSTREAM_SANDBOX_PROVIDER", "sandbox_provider"),
    )
    unsafe_local_sandbox: bool = Field(
        default=False,
        validation_alias=AliasChoices("UPSTREAM_UNSAFE_LOCAL_SANDBOX", "unsafe_local_sandbox"),
    )

    tools_dir_override: Path | None = Field(
        default=None, validation_alias=AliasChoices("UPSTREAM_TOOLS_DIR", "tools_dir")
    )
    turn_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        validation_alias=AliasChoices("UPSTREAM_TURN_TIMEOUT", "turn_timeout_seconds"),
    )

    max_request_bytes: int = Field(
        default=1024 * 1024,
        validation_alias=AliasChoices("UPSTREAM_MAX_REQUEST_BYTES", "max_request_bytes"),
    )
    git_timeout_seconds: float = Field(
        default=30.0, validation_alias=AliasChoices("UPSTREAM_GIT_TIMEOUT", "git_timeout_seconds")
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("github_pat", "github_client_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _psycopg_dialect(cls, value: str | None) -> str | None:
        """SQLAlchemy picks psycopg2 for a bare `postgresql://`; this service ships psycopg 3."""
        if value is None or value == "":
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @property
    def dev_mode(self) -> bool:
        """`GITHUB_PAT` outside production: the login page signs in that token's owner."""
        return self.github_pat is not None and self.environment != "production"

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.github_client_id) and self.github_client_secret is not None

    @property
    def local_mode(self) -> bool:
        """No sign-in configured: loopback only, unauthenticated requests act as the local
        admin."""
        return not self.oauth_enabled and not self.dev_mode

    @cached_property
    def sandboxes_dir(self) -> Path:
        return self.data_dir / "sandboxes"

    @cached_property
    def tools_dir(self) -> Path:
        """Agent CLIs, installed once from npm and shared read-only into every sandbox."""
        if self.tools_dir_override is not None:
            return self.tools_dir_override.expanduser().resolve()
        return self.data_dir / "tools"

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigurationError(
                "DATABASE_URL is not set; run through `upstream up` or point it at PostgreSQL"
            )
        return self.database_url

    def require_temporal_address(self) -> str:
        if self.temporal_address is None:
            raise ConfigurationError(
                "TEMPORAL_ADDRESS is not set; run through `upstream up` or point it at Temporal"
            )
        return self.temporal_address
