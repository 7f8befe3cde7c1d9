"""What `registre status` shows, gathered as plain data (the `--json` document): one function per
section, each reading its own sources, so that a source that is down costs its sections only.
deployments/status_view.py draws the same data on the screen."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar
from uuid import UUID

import httpx
import redis
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.control.orchestration import Orchestrator
from tasks.control.pools import owner_run
from tasks.control.spending import caps_reached
from tasks.coordination.redis_keys import RedisKeys
from tasks.failures import RetryLater
from tasks.queue.client import QueueError
from tasks.queue.costs import daily_costs
from tasks.queue.jobs import Stage
from tasks.queue.statuses import status_label, status_map
from tasks.queue.table import Queue
from tasks.services import capacity_manager, gemini_limiter
from tasks.settings import Settings

__all__ = ["SECTIONS", "Sources", "snapshot"]

T = TypeVar("T")
Data = dict[str, Any]

LOCAL_PREFECT_API = "http://127.0.0.1:4200/api"  # the server `registre up` starts
TIMEOUT_S = 5.0  # a screen waits this long for a source, not the workers' 30 s
LAST_ERRORS = 5  # per environment
HELD_EXPECTED_S = 15 * 60  # registry downloads take 1-3 min, an OCR run a few minutes


class Down(RetryLater):
    """A source did not answer; the message says which and what to check."""


@dataclass
class Sources:
    """The clients one screen reads, opened once (and kept while --watch refreshes)."""

    settings: Settings
    redis: redis.Redis
    supabase: Queue  # every environment's; a section reads each through queue(env)
    prefect_api: str
    prefect: SyncPrefectClient
    held_expected_s: float = HELD_EXPECTED_S
    days: int = 1  # the queue section counts the rows finished in the last `days` UTC days
    down_envs: dict[str, str] = field(default_factory=dict)  # this refresh's unreachable ones

    @classmethod
    @contextmanager
    def open(
        cls, settings: Settings, held_expected_s: float = HELD_EXPECTED_S, days: int = 1
    ) -> Iterator[Sources]:
        quick = settings.model_copy(update={"supabase_timeout_seconds": TIMEOUT_S})
        api = PREFECT_API_URL.value() or LOCAL_PREFECT_API  # never an ephemeral server
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S
        )
        with ExitStack() as stack:
            stack.callback(client.close)
            with ExitStack() as unset:
                if api != PREFECT_API_URL.value():  # Prefect's settings rebuilt: 0.3 s or more
                    unset.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
                prefect = get_client(sync_client=True, httpx_settings={"timeout": TIMEOUT_S})
            stack.enter_context(prefect)
            yield cls(quick, client, Queue(quick), _shown(api), prefect, held_expected_s, days)

    def queue(self, env: str) -> Queue:
        """`env`'s queue alone, fresh for a read: what fails in it is that environment's."""
        return self.supabase.only(env)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.settings.redis_key_prefix)


def _shown(url: str) -> str:
    """A URL without the password it may carry."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else url.rpartition("@")[2]


def _redis_down(src: Sources, exc: redis.RedisError) -> Down:
    where = _shown(src.settings.redis_url)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return Down(f"Redis unreachable at {where} ({type(exc).__name__}); check REDIS_URL")
    return Down(f"Redis at {where} refused ({type(exc).__name__}: {exc}); check REDIS_URL")


def _prefect_down(src: Sources, exc: Exception) -> Down:
    if isinstance(exc, ObjectNotFound):
        return Down(f"Prefect at {src.prefect_api} has no work pools yet: run `registre deploy`")
    if isinstance(exc, PrefectHTTPStatusError):
        why = f"answered HTTP {exc.response.status_code}"
    else:
        why = f"unreachable ({type(exc).__name__})"
    return Down(f"Prefect {why} at {src.prefect_api}; check PREFECT_API_URL")


@contextmanager
def _reading_redis(src: Sources) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise _redis_down(src, exc) from None


PREFECT_ERRORS = (httpx.HTTPError, PrefectHTTPStatusError, ObjectNotFound)


@contextmanager
def _reading_prefect(src: Sources) -> Iterator[None]:
    try:
        yield
    except PREFECT_ERRORS as exc:
        raise _prefect_down(src, exc) from None


def _per_env(src: Sources, read: Callable[[Queue, str], T]) -> dict[str, T | Data]:
    """`read` in every environment; one that does not answer becomes {"down": why} here and is
    not asked again in this refresh."""
    if not src.supabase.environments:
        raise Down(
            "no Supabase environment is configured: set PROD_, STAGING_ or DEV_SUPABASE_URL and"
            " _SUPABASE_SERVICE_KEY"
        )
    found: dict[str, T | Data] = {}
    urls = {e.name: e.supabase_url for e in src.settings.environments()}
    for env in src.supabase.environments:
        if env not in src.down_envs:
            queue = src.queue(env)
            try:
                result = read(queue, env)
            except QueueError as exc:
                queue.unavailable[env] = f"{exc.reason}; check {env.upper()}_SUPABASE_URL"
            if env in queue.unavailable:
                src.down_envs[env] = f"Supabase at {urls[env]}: {queue.unavailable[env]}"
            else:
                found[env] = result
        if env in src.down_envs:
            found[env] = {"down": src.down_envs[env]}
    return found


def _host(name: str, budget: Data | None, offers: Data, notes: list[str]) -> Data:
    allocated = {"cpu": 0.0, "ram": 0.0}
    return {"host": name, "budget": budget, "allocated": allocated, "runs": [], "offers": offers,
            "notes": notes}  # fmt: skip


def capacity(src: Sources) -> Data:
    """Per live host: its budget, what its runs hold of it, and which runs those are."""
    with _reading_redis(src):
        state = capacity_manager(src.settings, src.redis).status()
    hosts = {
        name: _host(name, asdict(budget), state.runs.get(name, {}), state.notes.get(name, []))
        for name, budget in state.hosts.items()
    }
    for w in state.workers:  # a run whose host expired still holds its cost: budget None
        host = hosts.setdefault(str(w["host"]), _host(str(w["host"]), None, {}, []))
        for resource in ("cpu", "ram"):
            host["allocated"][resource] += float(w[resource])  # type: ignore[arg-type]
        since = datetime.fromtimestamp(float(w["startedAt"]), UTC)  # type: ignore[arg-type]
        host["runs"].append({"run": w["workerId"], "kind": w["type"], "cpu": w["cpu"],
                             "ram": w["ram"], "since": since.isoformat()})  # fmt: skip
    return {
        "budget": asdict(state.budget),
        "allocated": asdict(state.allocated),
        "hosts": list(hosts.values()),
    }


def gemini(src: Sources) -> Data:
    """The shared limiter's trailing-minute totals against the limits, and any pause."""
    with _reading_redis(src):
        usage = gemini_limiter(src.settings, src.redis).usage()
    return {
        "requests": usage.requests,
        "max_requests": usage.max_requests,
        "rpm_percent": round(100 * usage.requests / usage.max_requests, 1),
        "tokens": usage.tokens,
        "max_tokens": usage.max_tokens,
        "tpm_percent": round(100 * usage.tokens / usage.max_tokens, 1),
        "paused_for_s": usage.paused_for_s,
    }


def limits(src: Sources) -> Data:
    """The pool and queue limits in force in Prefect, and the index/acte allocation in Redis."""
    found: Data = {}
    try:
        with _reading_prefect(src):
            found["prefect"] = Orchestrator(src.prefect).limits()
    except Down as exc:
        found["prefect"] = {"down": str(exc)}
    try:
        with _reading_redis(src):
            raw = src.redis.get(src.keys.pool_allocation)
        found["allocation"] = None if raw is None else json.loads(raw)
    except Down as exc:
        found["allocation"] = {"down": str(exc)}
    return found


def finished_since(days: int, now: datetime | None = None) -> datetime:
    """The start of the last `days` UTC days, today included (1: since midnight UTC)."""
    today = (now or datetime.now(UTC)).date()
    return datetime.combine(today - timedelta(days=days - 1), time.min, UTC)


def queue(src: Sources) -> Data:
    """Per environment: the live rows per status (by name, as `registre queue counts` says it)
    and source, the rows that finished (done, error) in the last `src.days` UTC days, and the
    table's size for all time as PostgreSQL estimates it. Every read is bounded: the live rows
    and the period's, through their indexes, never the table's whole history."""
    statuses = status_map(src.settings.status_mapping)
    since = finished_since(src.days)

    def read(q: Queue, env: str) -> Data:
        live = q.counts().get(env, {})
        finished = q.finished_counts(since).get(env, {})
        estimate = q.estimated_rows().get(env)
        rows = [
            {"status_id": status, "status": f"{status_label(statuses, status)} ({status})",
             "source": source, "rows": count, "finished": done}
            for done, counts in ((False, live), (True, finished))
            for (status, source), count in sorted(counts.items(), key=lambda kv: str(kv[0]))
        ]  # fmt: skip
        return {"rows": rows, "estimated_total_rows": estimate}

    return {"finished_since": since.isoformat(), "days": src.days,
            "environments": _per_env(src, read)}  # fmt: skip


def held(src: Sources) -> Data:
    """Rows held under a lease longer than expected, with their owner run's Prefect state."""
    now = datetime.now(UTC)
    columns = ("id,document_source,document_number,lease_owner,lease_stage,processing_started_at,"
               "ocr_started_at,updated_at")  # fmt: skip
    stages = {stage.value: stage for stage in Stage}

    def read(q: Queue, env: str) -> list[Data]:
        found = []
        for row in q.held_rows(env, columns):  # the columns the screen shows, in one request
            if (stage := stages.get(row["lease_stage"])) is None:
                continue  # held by another system's stage
            began = row["ocr_started_at" if stage is Stage.OCR else "processing_started_at"]
            began = datetime.fromisoformat(began or row["updated_at"] or now.isoformat())
            if (now - began).total_seconds() >= src.held_expected_s:
                found.append({"id": str(row["id"]), "source": row["document_source"],
                              "number": row["document_number"], "stage": stage.value,
                              "owner": row["lease_owner"], "since": began.isoformat(),
                              "held_s": round((now - began).total_seconds())})  # fmt: skip
        return sorted(found, key=lambda r: r["since"])

    per_env = _per_env(src, read)
    rows = [r for env_rows in per_env.values() if isinstance(env_rows, list) for r in env_rows]
    prefect_down = _add_run_states(src, rows)
    return {"longer_than_s": round(src.held_expected_s), "environments": per_env,
            "prefect": {"down": prefect_down} if prefect_down else None}  # fmt: skip


def _add_run_states(src: Sources, rows: list[Data]) -> str | None:
    """Each row's owner run, by the flow run id its owner carries, with its state in Prefect;
    returns why Prefect could not say."""
    run_ids = {r["id"]: run[1] for r in rows if (run := owner_run(r["owner"]))}
    states: dict[str, Data] = {}
    down = None
    if run_ids:
        wanted = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in set(run_ids.values())]))
        try:
            with _reading_prefect(src):
                runs = src.prefect.read_flow_runs(flow_run_filter=wanted)
            states = {str(r.id): {"name": r.name, "state": r.state_name} for r in runs}
        except Down as exc:
            down = str(exc)
    for row in rows:
        run_id = run_ids.get(row["id"])  # None: a run made by hand, not by a deployment
        unknown = {"name": None, "state": None if down else "not in Prefect"}
        row["run"] = run_id and {"id": run_id, **states.get(run_id, unknown)}
    return down


def errors(src: Sources) -> Data:
    """The last rows put in the error status, newest first, with their messages."""
    columns = "id,document_source,document_number,error_message,ocr_error,updated_at"

    def read(q: Queue, env: str) -> list[Data]:
        rows = q.last_errors(env, columns, LAST_ERRORS)
        return [
            {"id": r["id"], "source": r["document_source"], "number": r["document_number"],
             "stage": "ocr" if r["ocr_error"] else "registre",
             "message": r["ocr_error"] or r["error_message"], "when": r["updated_at"]}
            for r in rows
        ]  # fmt: skip

    return _per_env(src, read)


def costs(src: Sources) -> Data:
    """Today's spending (UTC day) per environment: registry fees, Gemini tokens by model."""
    today = datetime.now(UTC).date()

    def read(q: Queue, env: str) -> Data:
        if (cost := daily_costs(q, today).get(env)) is None:
            raise QueueError(f"{env}: no costs", reason="its costs could not be read")
        caps = [cap.message for cap in caps_reached(env, cost, src.settings)]
        return {**asdict(cost), "day": today.isoformat(), "total_usd": cost.total_usd,
                "caps_reached": caps}  # fmt: skip

    return _per_env(src, read)


# The screen's sections, in order; a section is a function of the sources returning JSON data.
SECTIONS: dict[str, Callable[[Sources], Any]] = {
    "capacity": capacity,
    "gemini": gemini,
    "limits": limits,
    "queue": queue,
    "held": held,
    "errors": errors,
    "costs": costs,
}


def snapshot(src: Sources, sections: Iterable[str] = SECTIONS) -> Data:
    """The sections asked for, each replaced by {"down": why} when its source did not answer."""
    src.down_envs.clear()
    found: Data = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    for name in sections:
        try:
            found[name] = SECTIONS[name](src)
        except Down as exc:
            found[name] = {"down": str(exc)}
    return found
