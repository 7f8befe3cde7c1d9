from __future__ import annotations

from types import SimpleNamespace

import pytest
from google.genai import types

from tasks.failures import ConfigError
from tasks.gemini.generate import TokenUsage, generate
from tasks.gemini.pricing import DEFAULT_PRICES, GeminiBill, PriceTableError, price_table
from tasks.queue.costs import reuse_hours
from tasks.settings import load_settings

FLASH, PRO = "gemini-2.5-flash", "gemini-2.5-pro"


def usage(prompt: int, output: int, thoughts: int = 0) -> TokenUsage:
    total = prompt + output + thoughts
    return TokenUsage(prompt_tokens=prompt, output_tokens=output, total_tokens=total,
                 thoughts_tokens=thoughts)  # fmt: skip


@pytest.mark.parametrize(
    ("model", "prompt", "output", "usd"),
    [
        (FLASH, 1_000_000, 1_000_000, 0.30 + 2.50),  # the list prices themselves
        (FLASH, 300_000, 0, 0.09),  # Flash has no long-prompt tier
        (PRO, 100_000, 10_000, 0.125 + 0.10),
        (PRO, 200_000, 0, 0.25),  # exactly 200k is still the short tier
        (PRO, 200_001, 10_000, 200_001 * 2.50 / 1e6 + 0.15),  # over: both rates go up
        (PRO, 0, 0, 0.0),
    ],
)
def test_a_call_costs_its_tokens_at_the_models_rates(model, prompt, output, usd):
    assert DEFAULT_PRICES[model].cost_usd(prompt, output) == pytest.approx(usd)


def test_thinking_tokens_are_billed_as_output():
    bill = GeminiBill(DEFAULT_PRICES)
    cost = bill.add(PRO, usage(1_000, 100, thoughts=400))
    assert cost == pytest.approx((1_000 * 1.25 + 500 * 10.00) / 1e6)
    assert bill.rows() == [{"model": PRO, "input tokens": 1_000, "output tokens": 500,
                            "USD": round(cost, 6)}]  # fmt: skip


def test_the_long_tier_is_decided_per_call_not_on_the_runs_total():
    bill = GeminiBill(DEFAULT_PRICES)
    bill.add(PRO, usage(150_000, 0))
    bill.add(PRO, usage(150_000, 0))  # 300k in all, but no call was over 200k
    assert bill.total_usd == pytest.approx(300_000 * 1.25 / 1e6)


def test_a_bill_sums_per_model_and_adds_to_what_the_row_recorded():
    bill = GeminiBill(DEFAULT_PRICES)
    for _ in range(3):
        bill.add(FLASH, usage(2_000, 500))
    bill.add(PRO, usage(5_000, 1_000))
    assert [r["model"] for r in bill.rows()] == [FLASH, PRO]
    assert bill.rows()[0]["input tokens"] == 6_000 and bill.rows()[0]["output tokens"] == 1_500
    flash_usd = 3 * (2_000 * 0.30 + 500 * 2.50) / 1e6
    pro_usd = (5_000 * 1.25 + 1_000 * 10.00) / 1e6
    assert bill.total_usd == pytest.approx(flash_usd + pro_usd)

    recorded = {PRO: {"input_tokens": 10, "output_tokens": 20, "cost_usd": 0.5}}
    columns = bill.columns(recorded)
    assert columns["gemini_usage"][PRO] == {
        "input_tokens": 5_010,
        "output_tokens": 1_020,
        "cost_usd": round(pro_usd + 0.5, 6),
    }
    assert columns["gemini_usage"][FLASH]["input_tokens"] == 6_000
    assert columns["gemini_cost_usd"] == pytest.approx(flash_usd + pro_usd + 0.5, abs=1e-6)
    assert bill.columns(None)["gemini_cost_usd"] == pytest.approx(bill.total_usd)


def test_an_unpriced_model_is_refused_not_counted_as_free():
    with pytest.raises(PriceTableError, match="GEMINI_PRICES"):
        GeminiBill(DEFAULT_PRICES).add("gemini-9-ultra", usage(1, 1))


def test_gemini_prices_adds_and_replaces_models_over_the_defaults():
    table = price_table('{"gemini-2.5-flash": {"input": 0.15, "output": 0.60},'
                        ' "gemini-3-pro": {"input": 2, "output": 12, "long_input": 4,'
                        ' "long_output": 18}}')  # fmt: skip
    assert table[FLASH].cost_usd(1_000_000, 0) == pytest.approx(0.15)
    assert table["gemini-3-pro"].cost_usd(300_000, 0) == pytest.approx(1.2)
    assert table[PRO] == DEFAULT_PRICES[PRO]
    assert price_table("") == DEFAULT_PRICES


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "GEMINI_PRICES is not valid JSON"),
        ('["gemini-2.5-pro"]', "GEMINI_PRICES must be a JSON object"),
        ('{"gemini-2.5-pro": {"input": 1.25}}', r"GEMINI_PRICES\['gemini-2.5-pro'\]: output"),
        ('{"gemini-2.5-pro": {"input": -1, "output": 10}}', "greater than or equal to 0"),
        ('{"gemini-2.5-pro": {"inptu": 1, "output": 10}}', "inptu: Extra inputs"),
        ('{"gemini-2.5-pro": 1.25}', r"GEMINI_PRICES\['gemini-2.5-pro'\]"),
    ],
)
def test_a_bad_price_table_is_refused_naming_the_variable(value, message):
    with pytest.raises(PriceTableError, match=message):
        price_table(value)
    with pytest.raises(ConfigError, match=message):
        load_settings(_env_file=None, gemini_prices=value)


def test_a_model_in_use_without_a_price_stops_the_start():
    with pytest.raises(ConfigError, match=r"GEMINI_BOOST_MODEL is 'gemini-3-pro'.*GEMINI_PRICES"):
        load_settings(_env_file=None, gemini_boost_model="gemini-3-pro")
    prices = '{"gemini-3-pro": {"input": 2, "output": 12}}'
    priced = load_settings(_env_file=None, gemini_boost_model="gemini-3-pro", gemini_prices=prices)
    assert priced.gemini_boost_model == "gemini-3-pro"


def test_index_downloads_are_not_reused_unless_asked():
    default = load_settings(_env_file=None)
    assert reuse_hours(default, "index") == 0
    assert reuse_hours(default, "acte") == reuse_hours(default, "plan_cadastraux") == 168
    asked = load_settings(_env_file=None, reuse_index_downloads=True, reuse_download_hours=2)
    assert reuse_hours(asked, "index") == 2


class _Limiter:
    """The RateLimiter seam, always granting."""

    def acquire(self, tokens_estimate: int, max_wait_s: float) -> None:
        return None

    def reconcile(self, permit: object, actual_tokens: int) -> None:
        return None

    def pause_all(self, seconds: float) -> None:
        return None


def test_generate_reads_the_thinking_tokens_gemini_reports():
    answer = types.GenerateContentResponse(
        candidates=[types.Candidate(content=types.Content(parts=[types.Part(text="ok")]),
                                    finish_reason=types.FinishReason.STOP)],
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=1_000, candidates_token_count=10, thoughts_token_count=300,
            total_token_count=1_310),
    )  # fmt: skip
    client = SimpleNamespace(models=SimpleNamespace(generate_content=lambda **_: answer))

    result = generate("hello", model=PRO, limiter=_Limiter(), client=client)

    assert result.usage.thoughts_tokens == 300 and result.usage.billed_output_tokens == 310
