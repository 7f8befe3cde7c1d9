"""The daily spend caps: once an environment's spending today (UTC) reaches
GEMINI_DAILY_BUDGET_USD, its new OCR work waits; once it reaches REGISTRY_DAILY_BUDGET_USD, its
new downloads wait. The dispatcher creates no run for them, and a run created before the cap
ends Skipped without claiming its row: rows wait neither failed nor charged an attempt. Runs
already at work finish, so a cap is overshot by at most the documents in progress when it was
reached. Work resumes at midnight UTC, or as soon as a higher cap is read (hosts restarted)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tasks.queue.costs import DailyCost, daily_costs
from tasks.queue.jobs import Stage
from tasks.queue.table import Queue
from tasks.settings import Settings

__all__ = ["SpendCap", "caps_reached", "held_back", "reached_caps"]


@dataclass(frozen=True)
class SpendCap:
    """A cap an environment reached today, and the stage it holds back."""

    env: str
    kind: str  # "gemini" | "registry"
    setting: str  # the variable that sets it
    stage: Stage
    spent_usd: float
    cap_usd: float
    day: date

    @property
    def message(self) -> str:
        work = "OCR" if self.stage is Stage.OCR else "download"
        return (
            f"{self.env}: today's {self.kind} spending, ${self.spent_usd:.2f}, reached the"
            f" daily cap of ${self.cap_usd:.2f} ({self.setting}): new {work} work waits"
            " until midnight UTC or a higher cap; runs in flight finish."
        )

    def numbers(self) -> dict[str, float | str]:
        return {
            "kind": self.kind,
            "spent_usd": round(self.spent_usd, 4),
            "cap_usd": self.cap_usd,
            "day": self.day.isoformat(),
        }


def caps_reached(env: str, cost: DailyCost, settings: Settings) -> list[SpendCap]:
    """The caps `cost` (one environment's day) reached."""
    caps = [
        (
            "gemini",
            "GEMINI_DAILY_BUDGET_USD",
            Stage.OCR,
            settings.gemini_daily_budget_usd,
            cost.gemini_usd,
        ),
        (
            "registry",
            "REGISTRY_DAILY_BUDGET_USD",
            Stage.REGISTRE,
            settings.registry_daily_budget_usd,
            cost.registry_usd,
        ),
    ]
    return [
        SpendCap(env, kind, setting, stage, spent, cap, cost.day)
        for kind, setting, stage, cap, spent in caps
        if cap is not None and spent >= cap
    ]


def reached_caps(queue: Queue, settings: Settings, today: date) -> dict[str, list[SpendCap]]:
    """Per environment, the caps its spending reached today; {} when no cap is set (and then
    nothing is read). An environment whose costs cannot be read is not held back."""
    if settings.gemini_daily_budget_usd is None and settings.registry_daily_budget_usd is None:
        return {}
    reached = {
        env: caps_reached(env, cost, settings) for env, cost in daily_costs(queue, today).items()
    }
    return {env: caps for env, caps in reached.items() if caps}


def held_back(capped: dict[str, list[SpendCap]], stage: Stage) -> set[str]:
    """The environments whose new work of `stage` waits for a cap they reached."""
    return {env for env, caps in capped.items() if any(c.stage is stage for c in caps)}
