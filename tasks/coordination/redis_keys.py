"""Every Redis key the product uses, built in one place under settings.redis_key_prefix.

Operators know several of these names (docs/operations.md, docs/capacity.md), and running
processes share them: renaming one is a migration, not a refactor."""

from __future__ import annotations

__all__ = ["RedisKeys"]


class RedisKeys:
    """The keys under one prefix ("" by default); ms and s are on Redis's clock."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        p = prefix
        # Capacity reservations (tasks/coordination/capacity/leases.py)
        self.capacity_hosts = f"{p}server:hosts"  # zset: host id -> its budget expires at, ms
        self.capacity_budgets = f"{p}server:hosts:budget"  # hash: host id -> json budget, runs
        self.capacity_leases = f"{p}server:leases"  # zset: lease id -> it expires at, ms
        self.capacity_workers = f"{p}server:workers"  # hash: lease id -> json lease record
        self.capacity_cpu_allocated = f"{p}server:cpu:allocated"  # string: vCPU leased now
        self.capacity_ram_allocated = f"{p}server:ram:allocated"  # string: GB leased now
        # Gemini rate limiter (tasks/coordination/ratelimit.py)
        self.gemini_log = f"{p}gemini:log"  # zset: "<request id>:<tokens>" -> admitted at, µs
        self.gemini_rpm = f"{p}gemini:rpm:current"  # string: requests in the trailing window
        self.gemini_tpm = f"{p}gemini:tpm:current"  # string: tokens in the trailing window
        self.gemini_paused = f"{p}gemini:paused"  # string "1": every process waits out its TTL
        self.gemini_epoch = f"{p}gemini:epoch"  # string "<id>:<ms>": when the window's memory began
        # Control plane (tasks/control/dispatch.py)
        self.pool_limits = f"{p}worker_pool:limits"  # string: json of the limits last set
        self.pool_allocation = f"{p}worker_pool:allocation"  # string: json index/acte split
        self.dispatch_lock = f"{p}dispatch:lock"  # string: the dispatcher's token, with a TTL
        self.dispatch_again = f"{p}dispatch:again"  # string "1": dispatch once more after this
        # string: the fingerprint of the last rebalance artifact; its TTL makes the next one due
        self.rebalance_reported = f"{p}rebalance:reported"
        # Alerts (tasks/control/alerts.py): json {host: runs held} at the last rebalance
        self.alert_hosts_seen = f"{p}alert:hosts"
        # Registry sessions (tasks/registry/session.py)
        self.registre_sessions = f"{p}registre:sessions"  # zset: account id -> expires at, s

    def run_stopped(self, run_id: str) -> str:
        """String "1": the run's host stopped it, so its crash or failure counts no attempt."""
        return f"{self.prefix}run:stopped:{run_id}"

    def run_unleased(self, run_id: str) -> str:
        """String: ISO time the run was first seen without a capacity lease."""
        return f"{self.prefix}run:unleased:{run_id}"

    def alert_sent(self, alert: str, subject: str) -> str:
        """String "1" with the alert period as TTL: this alert was sent for this subject."""
        return f"{self.prefix}alert:sent:{alert}:{subject}"

    def alert_errors_since(self, env: str) -> str:
        """String: ISO time the environment's last error digest counted up to."""
        return f"{self.prefix}alert:errors:since:{env}"

    def alert_stage_idle(self, stage: str) -> str:
        """String: ISO time the stage last had nothing waiting."""
        return f"{self.prefix}alert:idle:{stage}"

    def alert_since(self, alert: str) -> str:
        """String: ISO time the alert's condition was first seen holding, without a break."""
        return f"{self.prefix}alert:since:{alert}"

    def registre_session(self, account_id: str) -> str:
        """String: json of the account's logged-in browser state (a secret), with a TTL."""
        return f"{self.prefix}registre:session:{account_id}"

    def __repr__(self) -> str:
        return f"RedisKeys(prefix={self.prefix!r})"
