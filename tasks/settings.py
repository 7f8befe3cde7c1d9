from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tasks.coordination.machine import this_machine
from tasks.failures import ConfigError
from tasks.gemini.pricing import check_priced, price_table

ENVIRONMENT_ORDER = ("prod", "staging", "dev")  # the order in which queues are polled
PREFECT_MIN_RUN_RETENTION_S = 3600  # Prefect's db_vacuum refuses a retention of 1 hour or less


@dataclass(frozen=True)
class Environment:
    name: str
    supabase_url: str
    service_key: SecretStr


def _detected(resource: str) -> float:
    try:
        return getattr(this_machine(), resource).value
    except OSError as exc:
        raise ConfigError(f"cannot size this machine ({exc})") from None


class Settings(BaseSettings):
    """Everything read from the environment (and `.env`), under the operators' variable names."""

    # An empty value (`SERVER_MAX_CPU=` copied from .env.example) means the default. Frozen: read
    # once at the edge, then only handed down (model_copy(update=...) for a variant).
    model_config = SettingsConfigDict(
        frozen=True,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    prod_supabase_url: str | None = None
    prod_supabase_service_key: SecretStr | None = None
    staging_supabase_url: str | None = None
    staging_supabase_service_key: SecretStr | None = None
    dev_supabase_url: str | None = None
    dev_supabase_service_key: SecretStr | None = None
    # "seed": 1 waiting, 2 processing, 3 complete, 4 OCR complete, 5 error.
    # "notaflow": the NotaFlow database's canonical ids (4 error, 5 done, 6 OCR processing).
    status_mapping: Literal["seed", "notaflow"] = "seed"
    queue_lease_seconds: int = Field(300, gt=0)
    supabase_timeout_seconds: float = Field(30.0, gt=0)

    redis_url: str = "redis://127.0.0.1:6379/0"

    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = None  # the Gemini stand-in; None means Google's endpoint
    gemini_max_rpm: int = Field(1600, gt=0)
    gemini_max_tpm: int = Field(6_400_000, gt=0)

    registry_base_url: str = "https://www.registrefoncier.gouv.qc.ca"
    # The environment whose worker_accounts table holds the registry logins (default: the first
    # enabled one in polling order), so that all environments share one set of accounts.
    registry_accounts_environment: Literal["prod", "staging", "dev"] | None = None
    browser_headless: bool = True

    worker_count: int = Field(1, ge=0)
    ocr_worker_pool_size: int = Field(4, ge=0)
    ocr_min_index_workers: int = Field(1, ge=0)
    ocr_min_acte_workers: int = Field(1, ge=0)
    ocr_rebalance_interval_ms: int = Field(30_000, gt=0)
    # This host's size; unset, this machine's (tasks/coordination/machine.py), cgroup limits
    # respected.
    server_max_cpu: float = Field(default_factory=lambda: _detected("cpu"), gt=0)  # vCPU
    server_max_ram: float = Field(default_factory=lambda: _detected("ram"), gt=0)  # GB
    server_reserve_cpu_percent: float = Field(20, ge=0, le=100)
    server_reserve_ram_percent: float = Field(20, ge=0, le=100)
    # Coordination (tasks/coordination/capacity/, tasks/coordination/ratelimit.py): the cost
    # table, in vCPU and GB per run.
    cost_registre_cpu: float = Field(3, ge=0)
    cost_registre_ram: float = Field(1, ge=0)
    cost_index_ocr_cpu: float = Field(1.5, ge=0)
    cost_index_ocr_ram: float = Field(0.75, ge=0)
    cost_acte_ocr_cpu: float = Field(1, ge=0)
    cost_acte_ocr_ram: float = Field(0.5, ge=0)
    # Counts that do not fit the budget: refuse to start, or reduce them (with a warning).
    capacity_overcommit: Literal["refuse", "reduce"] = "refuse"
    capacity_lease_seconds: float = Field(60, gt=0)  # a dead run's capacity is free after this
    capacity_host_ttl_seconds: float = Field(30, gt=0)  # a silent host expires after this
    redis_key_prefix: str = ""  # prepended to every coordination key
    # The control plane (tasks/control/dispatch.py, `registre worker`)
    registre_host_id: str | None = None  # this host's name in the budgets; default: hostname
    dispatch_interval_seconds: float = Field(2, gt=0)  # how often a worker looks for documents
    worker_drain_seconds: float = Field(600, ge=0)  # runs in progress may finish within this
    # A Prefect worker is replaced after this many runs started or above this resident memory (MB),
    # whichever comes first; 0 turns either off (deployments/recycle.py).
    worker_recycle_runs: int = Field(200, ge=0)
    worker_recycle_mb: float = Field(300, ge=0)
    # A process pool's runs are forked from an engine server with Prefect and the flows imported
    # (deployments/engine_server.py); false: each run starts a fresh interpreter.
    worker_warm_starts: bool = True
    retry_base_seconds: int = Field(60, ge=1)  # a transient failure waits this x 1, 2, 4...
    # OCR calls (tasks/gemini/, tasks/pages/images.py)
    gemini_timeout_seconds: float = Field(300, gt=0)  # one HTTP call; a long PDF takes minutes
    gemini_max_attempts: int = Field(5, ge=1)  # per call, over 429s, 5xx and timeouts
    gemini_max_wait_seconds: float = Field(300, gt=0)  # longest wait for rate-limit capacity
    ocr_dpi: int = Field(300, ge=72, le=600)
    gemini_extract_model: str = "gemini-2.5-flash"  # reads pages and actes
    gemini_boost_model: str = "gemini-2.5-pro"  # the correction pass over a whole document
    ocr_page_concurrency: int = Field(4, ge=1)  # index pages read at once within one document
    # Longer PDFs fail at once: an index of a few hundred pages is a wrong download, and an
    # acte's whole PDF goes to Gemini in one call (its limit is 1,000 pages).
    ocr_max_pages: int = Field(300, ge=1)

    # Money (tasks/gemini/pricing.py, tasks/queue/costs.py). GEMINI_PRICES: a JSON object over
    # the default price table, {"<model>": {"input": USD, "output": USD per million tokens,
    # optionally "long_input", "long_output" and "long_above_tokens" for long prompts}}.
    gemini_prices: str = ""
    # The registry's fee per document consulted, in USD (it bills CAD: convert). Not known to this
    # project: read it from the registry's invoices ("Historique des factures") and set it.
    registry_fee_usd: float = Field(0.0, ge=0)
    # A request for a document downloaded this recently (same source, number, circonscription,
    # cadastre, désignation, acte type) reuses that PDF instead of paying again; 0: never reuse.
    reuse_download_hours: float = Field(168, ge=0)
    reuse_index_downloads: bool = False  # an index changes with every registration

    # Daily spend caps per environment, in USD over the UTC day; unset: none
    # (tasks/control/spending.py). Reached, new work of the stage waits; runs in flight finish.
    gemini_daily_budget_usd: float | None = Field(None, ge=0)
    registry_daily_budget_usd: float | None = Field(None, ge=0)

    # Alerts (tasks/control/alerts.py, docs/operations.md): the webhook the automations call
    # (unset: no alert is sent); one alert per condition and subject per period at most.
    alert_webhook_url: SecretStr | None = None
    alert_period_minutes: float = Field(60, gt=0)
    alert_stall_minutes: float = Field(30, gt=0)  # documents waiting, none finished
    alert_gemini_paused_minutes: float = Field(10, gt=0)  # paused for quota this long
    alert_gemini_usage_share: float = Field(0.8, gt=0, le=1)  # of RPM or TPM, sustained for
    alert_gemini_usage_minutes: float = Field(15, gt=0)  # this long

    # Retention in the Prefect database (docs/operations.md). Document runs (with their task runs,
    # logs, artifacts) after they end: Prefect's own db_vacuum, set on the server `registre up`
    # starts. Rebalance runs: the rebalance deletes its own (Prefect has one retention for all).
    document_run_retention_days: float = Field(30, gt=0)
    rebalance_run_retention_hours: float = Field(24, gt=0)
    event_retention_hours: float = Field(48, gt=0)

    @field_validator("document_run_retention_days")
    @classmethod
    def _prefect_minimum(cls, days: float) -> float:
        if days * 86400 <= PREFECT_MIN_RUN_RETENTION_S:
            raise ValueError(
                f"must be more than 1 hour ({PREFECT_MIN_RUN_RETENTION_S / 86400:.4f} days):"
                " Prefect's db_vacuum refuses a shorter retention"
            )
        return days

    @model_validator(mode="after")
    def _url_and_key_together(self) -> Settings:
        for env in ENVIRONMENT_ORDER:
            url = getattr(self, f"{env}_supabase_url")
            key = getattr(self, f"{env}_supabase_service_key")
            if bool(url) != bool(key and key.get_secret_value()):
                have, missing = ("URL", "SERVICE_KEY") if url else ("SERVICE_KEY", "URL")
                raise ValueError(
                    f"{env.upper()}_SUPABASE_{have} is set but {env.upper()}_SUPABASE_{missing}"
                    " is not: set both to enable the environment, or neither"
                )
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{env.upper()}_SUPABASE_URL must start with http:// or https://")
        return self

    @model_validator(mode="after")
    def _models_priced(self) -> Settings:
        check_priced(price_table(self.gemini_prices), {
            "GEMINI_EXTRACT_MODEL": self.gemini_extract_model,
            "GEMINI_BOOST_MODEL": self.gemini_boost_model,
        })  # fmt: skip
        return self

    def size_origin(self, resource: Literal["cpu", "ram"]) -> str:
        """Where SERVER_MAX_CPU or SERVER_MAX_RAM came from: the variable, or this machine."""
        if f"server_max_{resource}" in self.model_fields_set:
            return f"SERVER_MAX_{resource.upper()}"
        return f"detected: {getattr(this_machine(), resource).source}"

    def host_size(self) -> str:
        """This host's size and where it came from, e.g. "2 vCPU (detected: cgroup quota),
        16 GB (SERVER_MAX_RAM)"."""
        cpu, ram = (
            f"{x:.1f}".removesuffix(".0") for x in (self.server_max_cpu, self.server_max_ram)
        )
        return f"{cpu} vCPU ({self.size_origin('cpu')}), {ram} GB ({self.size_origin('ram')})"

    def host_id(self) -> str:
        return self.registre_host_id or socket.gethostname()

    def environments(self) -> list[Environment]:
        """The enabled environments, in polling order (prod, staging, dev)."""
        enabled = []
        for env in ENVIRONMENT_ORDER:
            url = getattr(self, f"{env}_supabase_url")
            key = getattr(self, f"{env}_supabase_service_key")
            if url and key:
                enabled.append(Environment(env, url.rstrip("/"), key))
        return enabled

    def environment(self, name: str) -> Environment:
        for env in self.environments():
            if env.name == name:
                return env
        raise ConfigError(
            f"environment {name!r} is not enabled: set {name.upper()}_SUPABASE_URL and"
            f" {name.upper()}_SUPABASE_SERVICE_KEY"
        )


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning pydantic's report into one naming the environment variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            variable = "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable}: {message}" if variable else message)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
