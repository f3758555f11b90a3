"""All environment wiring in one place: a ``Settings`` built once at the edge and passed down.

Every command shares one state folder (``AIRLOCK_HOME``) holding the SQLite files and Prefect's
own home, so a second terminal finds the run that the first one is waiting on.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRLOCK_", extra="ignore")

    project_dir: Path = Field(default_factory=Path.cwd, description="folder holding flows/, tools/, playbooks/")
    home: Path | None = Field(default=None, description="state folder; default PROJECT_DIR/.airlock")
    database_url: str | None = Field(default=None, description="Airlock's store; default SQLite in HOME")
    crm_url: str | None = Field(default=None, description="the CRM business system; default SQLite in HOME")
    user: str | None = Field(default=None, description="who acts; default the OS user")
    chunk_size: int = Field(default=500, ge=1, description="records per chunk task")
    max_chunks: int = Field(default=25, ge=1, description="cap on chunks per step; chunks grow to respect it")
    task_workers: int = Field(default=4, ge=1, description="threads running chunk tasks")
    review_poll_interval: float = Field(default=2.0, gt=0, description="seconds between checks for a resume")
    webhooks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated Slack-compatible webhook URLs (reviews, crashes)")
    review_url: str = Field(default="http://127.0.0.1:8765", description="the review page's address, used in notices")
    token: SecretStr | None = Field(default=None, description="your user token (the CLI acts as its user)")
    review_host: str = Field(default="127.0.0.1", description="address the review page binds to")
    review_port: int = Field(default=8765, ge=1, le=65535, description="port of the review page")
    review_suspend_after: float = Field(
        default=600, ge=0, description="under a deployment, review windows at least this long suspend the run")

    @field_validator("webhooks", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("project_dir", "home", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def state_dir(self) -> Path:
        return self.home or (self.project_dir / ".airlock")

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'airlock.db'}"

    @property
    def crm_database_url(self) -> str:
        return self.crm_url or f"sqlite:///{self.state_dir / 'crm.db'}"

    @property
    def actor(self) -> str:
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"

    @property
    def prefect_home(self) -> Path:
        return self.state_dir / "prefect"

    def prepare_environment(self) -> None:
        """Create the state folder and point Prefect at it. Call before Prefect is imported."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PREFECT_HOME", str(self.prefect_home))
        os.environ.setdefault("DO_NOT_TRACK", "1")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
