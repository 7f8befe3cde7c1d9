from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from tasks.registry.errors import AccountStoreError, NoAccountAvailable

__all__ = ["Account", "AccountPool", "Rpc"]

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 15 * 60
DEFAULT_MAX_FAILURES = 3


@dataclass(frozen=True, kw_only=True)
class Account:
    """A registry login. The password is a SecretStr: it prints as '**********'."""

    id: str
    username: str
    password: SecretStr

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        return cls(id=str(row["id"]), username=row["username"], password=SecretStr(row["password"]))


# Calls a SQL function of the accounts' environment: (function, params, repeatable=...) -> what it
# returns. The queue's (functools.partial(queue.rpc, env)), so that its retry policy covers the
# accounts; a checkout or a login count is not repeatable (a repeat would take a second account,
# or count one refusal twice), so a dropped answer sends the document back to wait instead.
Rpc = Callable[..., Any]


class AccountPool:
    """Registry accounts from `worker_accounts`, checked out atomically so that concurrent runs
    use different accounts (registre_checkout_account_v1, FOR UPDATE SKIP LOCKED)."""

    def __init__(
        self,
        rpc: Rpc,
        *,
        owner: str | None = None,
        lease_s: int = DEFAULT_LEASE_S,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        self._call = rpc
        self.owner = owner or f"registre-{uuid.uuid4().hex[:12]}"
        self.lease_s = lease_s
        self.max_failures = max_failures

    def __repr__(self) -> str:
        return f"AccountPool(owner={self.owner!r})"

    async def checkout(self, *, exclude: Iterable[str] = (), prefer: Iterable[str] = ()) -> Account:
        """The least recently used free account, among those in `prefer` first (accounts with a
        stored session); raises NoAccountAvailable when there is none."""
        params = {
            "p_owner": self.owner,
            "p_lease_seconds": self.lease_s,
            "p_max_failures": self.max_failures,
            "p_exclude": list(exclude) or None,
            "p_prefer": list(prefer) or None,
        }
        rows = await self._rpc("registre_checkout_account_v1", params, repeatable=False)
        if not rows:
            raise NoAccountAvailable()
        account = Account.from_row(rows[0])
        logger.info(
            "account checked out",
            extra={"action": "checkout_account", "account_id": account.id, "owner": self.owner},
        )
        return account

    async def release(self, account: Account) -> None:
        await self._rpc("registre_release_account_v1", {"p_id": account.id, "p_owner": self.owner})

    async def record_login(self, account: Account, *, success: bool) -> int:
        """Count a refused login (or reset the count after a good one); returns failure_count."""
        params = {"p_id": account.id, "p_success": success}
        data = await self._rpc("registre_record_login_v1", params, repeatable=False)
        if not success:
            logger.warning(
                "registry refused account credentials",
                extra={"action": "login_refused", "account_id": account.id, "failures": data},
            )
        return int(data) if isinstance(data, int) else 0

    async def _rpc(self, name: str, params: dict[str, Any], *, repeatable: bool = True) -> Any:
        try:
            return await asyncio.to_thread(self._call, name, params, repeatable=repeatable)
        except Exception as exc:  # the queue's QueueError, or the caller's: names no secret
            raise AccountStoreError(f"accounts: {exc}") from exc
