"""What Gemini costs: the price table per model and the arithmetic of a run's bill.

Pure: values in, values out. Prices are USD per million tokens, Google's paid tier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.failures import ConfigError

__all__ = [
    "DEFAULT_PRICES",
    "GeminiBill",
    "ModelPrice",
    "ModelSpend",
    "PriceTableError",
    "check_priced",
    "price_table",
]

PER_MILLION = 1_000_000
LONG_PROMPT_TOKENS = 200_000  # 2.5 Pro bills a call whose prompt is longer at its long rates
USD_DIGITS = 6  # micro-dollars: a page read by Flash costs a fraction of a cent
PRICING_PAGE = "https://ai.google.dev/gemini-api/docs/pricing"
EXAMPLE = '{"gemini-2.5-flash": {"input": 0.30, "output": 2.50}}'


class ModelPrice(BaseModel):
    """USD per million tokens. A call whose prompt exceeds `long_above_tokens` is billed at the
    long rates, input and output, when the model has them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)  # thinking tokens included: Google bills them as output
    long_input: float | None = Field(None, ge=0)
    long_output: float | None = Field(None, ge=0)
    long_above_tokens: int = Field(LONG_PROMPT_TOKENS, gt=0)

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        long = input_tokens > self.long_above_tokens
        input_rate = self.long_input if long and self.long_input is not None else self.input
        output_rate = self.long_output if long and self.long_output is not None else self.output
        return (input_tokens * input_rate + output_tokens * output_rate) / PER_MILLION


# Google's list prices for the Gemini API, paid tier, standard requests (not Batch, no context
# cache), from PRICING_PAGE as transcribed on 2026-09-20; the
# same since the 2.5 models became generally available (June 2025). Override with GEMINI_PRICES.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    # prompts up to 200k tokens / over 200k tokens
    "gemini-2.5-pro": ModelPrice(input=1.25, output=10.00, long_input=2.50, long_output=15.00),
    # text, image, video and PDF input (audio input is $1.00; we send none)
    "gemini-2.5-flash": ModelPrice(input=0.30, output=2.50),
}


class PriceTableError(ConfigError):
    """GEMINI_PRICES is not a price table, or a model in use has no price."""


def price_table(overrides_json: str) -> dict[str, ModelPrice]:
    """DEFAULT_PRICES with the models of GEMINI_PRICES (a JSON object) added or replaced; a
    model given there replaces its whole default price."""
    table = dict(DEFAULT_PRICES)
    if not overrides_json.strip():
        return table
    try:
        given = json.loads(overrides_json)
    except json.JSONDecodeError as exc:
        raise PriceTableError(
            f"GEMINI_PRICES is not valid JSON ({exc.msg} at character {exc.pos}); expected an"
            f" object of model prices in USD per million tokens, e.g. {EXAMPLE}"
        ) from None
    if not isinstance(given, dict):
        raise PriceTableError(
            f"GEMINI_PRICES must be a JSON object of model prices, e.g. {EXAMPLE}"
        )
    for model, price in given.items():
        try:
            table[model] = ModelPrice.model_validate(price)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'price'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise PriceTableError(
                f"GEMINI_PRICES[{model!r}]: {problems} (keys: input, output, long_input,"
                " long_output in USD per million tokens, long_above_tokens)"
            ) from None
    return table


def check_priced(table: Mapping[str, ModelPrice], models: Mapping[str, str]) -> None:
    """Every model in use (setting name -> model) has a price, or PriceTableError."""
    for variable, model in models.items():
        if model not in table:
            raise PriceTableError(
                f"{variable} is {model!r}, which GEMINI_PRICES does not price (priced:"
                f" {', '.join(sorted(table))}); add its prices in USD per million tokens from"
                f" {PRICING_PAGE}, e.g. GEMINI_PRICES="
                f'\'{{"{model}": {{"input": ..., "output": ...}}}}\''
            )


class TokenCounts(Protocol):
    """What a Gemini answer reports (tasks.gemini.generate.TokenUsage)."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def billed_output_tokens(self) -> int: ...


@dataclass
class ModelSpend:
    input_tokens: int = 0
    output_tokens: int = 0  # thinking tokens included, as billed
    cost_usd: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": round(self.cost_usd, USD_DIGITS)}  # fmt: skip


@dataclass
class GeminiBill:
    """What one run's Gemini calls cost, per model. Each call is priced alone: the long-prompt
    rate depends on that call's prompt."""

    prices: Mapping[str, ModelPrice]
    models: dict[str, ModelSpend] = field(default_factory=dict)

    def add(self, model: str, usage: TokenCounts) -> float:
        """Count one call; returns its cost in USD."""
        if model not in self.prices:
            raise PriceTableError(f"no price for {model!r}: add it to GEMINI_PRICES")
        output = usage.billed_output_tokens
        cost = self.prices[model].cost_usd(usage.prompt_tokens, output)
        spend = self.models.setdefault(model, ModelSpend())
        spend.input_tokens += usage.prompt_tokens
        spend.output_tokens += output
        spend.cost_usd += cost
        return cost

    @property
    def total_usd(self) -> float:
        return round(sum(s.cost_usd for s in self.models.values()), USD_DIGITS)

    def rows(self) -> list[dict[str, Any]]:
        """The run's cost table: model, input tokens, output tokens, USD."""
        return [
            {"model": model, "input tokens": s.input_tokens, "output tokens": s.output_tokens,
             "USD": round(s.cost_usd, USD_DIGITS)}
            for model, s in sorted(self.models.items())
        ]  # fmt: skip

    def columns(self, recorded: Any) -> dict[str, Any]:
        """The row's gemini_usage and gemini_cost_usd: what earlier attempts recorded (the row's
        gemini_usage, or None) plus this run."""
        totals: dict[str, ModelSpend] = {}
        for model, spent in (recorded if isinstance(recorded, dict) else {}).items():
            if isinstance(spent, dict):
                totals[model] = ModelSpend(
                    int(spent.get("input_tokens") or 0),
                    int(spent.get("output_tokens") or 0),
                    float(spent.get("cost_usd") or 0),
                )
        for model, spent in self.models.items():
            total = totals.setdefault(model, ModelSpend())
            total.input_tokens += spent.input_tokens
            total.output_tokens += spent.output_tokens
            total.cost_usd += spent.cost_usd
        return {
            "gemini_usage": {model: s.as_json() for model, s in sorted(totals.items())},
            "gemini_cost_usd": round(sum(s.cost_usd for s in totals.values()), USD_DIGITS),
        }
