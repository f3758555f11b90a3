"""All environment wiring in one place: a ``Settings`` built once at the edge and passed down.

Every command shares one state folder (``AIRLOCK_HOME``) holding the SQLite files and Prefect's
own home, so a second terminal finds the run that the first one is waiting on.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EPHEMERAL_STARTUP_SECONDS = 90


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRLOCK_", extra="ignore")

    project_dir: Path = Field(default_factory=Path.cwd, description="folder holding flows/, tools/, playbooks/")
    home: Path | None = Field(default=None, description="state folder; default PROJECT_DIR/.airlock")
    data_dir: Path | None = Field(
        default=None, description="reference data the tools read (reference_firmographics.csv, taxonomy.csv); "
        "default PROJECT_DIR/data")
    database_url: str | None = Field(default=None, description="Airlock's store; default SQLite in HOME")
    crm_url: str | None = Field(default=None, description="the CRM business system; default SQLite in HOME")
    user: str | None = Field(default=None, description="who acts; default the OS user")
    chunk_size: int = Field(default=500, ge=1, description="records per chunk task")
    max_chunks: int = Field(default=8, ge=1, description="cap on chunks per step; chunks grow to respect it")
    task_workers: int = Field(default=4, ge=1, description="threads running chunk tasks")
    chunk_wave: int = Field(
        default=4, ge=1, description="chunks mapped together; later waves' tools overlap earlier waves' "
        "validation and writes")
    tool_processes: int | None = Field(
        default=None, ge=0, description="worker processes for pure tools; default one per core beyond the first "
        "(at most 4); 0 runs every tool in the run's process")
    tool_process_min_records: int = Field(
        default=1000, ge=1, description="smallest chunk step sent to a tool process; smaller ones run in place")
    review_poll_interval: float = Field(default=2.0, gt=0, description="seconds between checks for a resume")
    webhooks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated Slack-compatible webhook URLs (reviews, crashes)")
    review_url: str = Field(default="http://127.0.0.1:8765", description="the review page's address, used in notices")
    # The model as planner (airlock.llm). Secrets never come from flow parameters: the key is read from
    # AIRLOCK_LLM_API_KEY, else the provider's own variable, else a Prefect Secret block.
    planner: Literal["rules", "anthropic", "openai"] = Field(default="rules", description="who plans requests")
    llm_model: str | None = Field(default=None, description="model name; default per provider")
    llm_base_url: str | None = Field(default=None, description="API base URL (a local OpenAI-compatible server)")
    llm_api_key: SecretStr | None = Field(default=None, description="API key; else ANTHROPIC_API_KEY/OPENAI_API_KEY")
    llm_secret_block: str | None = Field(default=None, description="Prefect Secret block holding the API key")
    llm_timeout: float = Field(default=60.0, gt=0, description="seconds per model call")
    llm_max_retries: int = Field(default=0, ge=0, le=5, description="the SDK's own retries; airlock.retry retries")
    llm_attempts: int = Field(default=3, ge=1, le=10, description="attempts per planner call (airlock.retry)")
    llm_concurrency: int = Field(default=4, ge=1, description="model calls in flight per process")
    llm_tokens_per_minute: int | None = Field(default=None, ge=1, description="pace calls to this quota")
    llm_max_tokens: int = Field(default=4096, ge=64, description="output tokens per call")
    llm_repairs: int = Field(default=2, ge=0, le=5, description="plan repairs the model may attempt")
    llm_batch_size: int = Field(default=20, ge=1, le=200, description="records per enrichment call")
    llm_budget_tokens: int | None = Field(default=None, ge=0, description="per-run cap on tokens in+out")
    llm_budget_usd: float | None = Field(default=None, ge=0, description="per-run cap on model spend (USD)")
    llm_prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="USD per million tokens by model: {model: {input, output, cache_read, cache_write}}")
    # Recovery and the second business system (issue 5).
    tickets_url: str | None = Field(default=None, description="the ticketing service; default: the CLI starts one")
    http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost"], description="hosts REST tools may call")
    http_timeout: float = Field(default=5.0, gt=0, description="seconds before a REST call gives up")
    lease_seconds: float = Field(default=600.0, gt=0, description="a run not renewing its lease this long is crashed")
    dlq_alert_threshold: int = Field(default=50, ge=1, description="notify when open dead letters reach this")
    token: SecretStr | None = Field(default=None, description="your user token (the CLI acts as its user)")
    review_host: str = Field(default="127.0.0.1", description="address the review page binds to")
    review_port: int = Field(default=8765, ge=1, le=65535, description="port of the review page")
    review_suspend_after: float = Field(
        default=600, ge=0, description="under a deployment, review windows at least this long suspend the run")

    @field_validator("webhooks", "http_allowed_hosts", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("project_dir", "home", "data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def state_dir(self) -> Path:
        return self.home or (self.project_dir / ".airlock")

    @property
    def reference_dir(self) -> Path:
        return self.data_dir or (self.project_dir / "data")

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
        # Prefect gives its ephemeral server 20 s to start; on a busy two-core machine it has taken
        # longer (26 s measured), and the command then fails for no fault of the user's.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_SECONDS))
