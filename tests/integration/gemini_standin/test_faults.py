from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from PIL import Image

from sandbox import gemini as standin
from tasks.coordination import ratelimit
from tasks.gemini.client import make_client
from tasks.gemini.errors import GeminiRejected, MalformedOutput, TruncatedOutput, Unavailable
from tests.conftest import TEST_REDIS_URL

from .conftest import API_KEY, FAST, MODEL, InProcessLimiter, call, set_faults, stats


@pytest.fixture(scope="module")
def tight_url() -> Iterator[str]:
    """3 requests per 2-second window: small enough to hit in a test."""
    with standin.serve(API_KEY, rpm=3, tpm=1_000_000, window_s=2, load_catalogue=False) as url:
        yield url


def test_429_pauses_every_caller_then_succeeds(tight_url) -> None:
    client = make_client(API_KEY, tight_url, timeout_s=10)
    limiter = InProcessLimiter()
    started = time.monotonic()
    results = [call(client, limiter) for _ in range(5)]
    assert all(r.text for r in results)
    assert limiter.pauses and all(1 <= p <= 2 for p in limiter.pauses)  # Google's "2s", parsed
    assert time.monotonic() - started >= 1.0  # the pause was waited out, not hammered through
    counters = stats(tight_url)
    assert counters["rate_limited"] == len(limiter.pauses)
    assert counters["models"][MODEL]["requests"] == 5 + len(limiter.pauses)


def test_429_body_is_googles(tight_url) -> None:
    time.sleep(2.1)  # an empty window
    answers = [
        httpx.post(
            f"{tight_url}/v1beta/models/{MODEL}:generateContent",
            headers={"x-goog-api-key": API_KEY},
            json={"contents": [{"parts": [{"text": "hi"}]}]},
        )
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    error = answers[-1].json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    types_ = [d["@type"].rsplit("/", 1)[1] for d in error["details"]]
    assert "google.rpc.QuotaFailure" in types_ and "google.rpc.RetryInfo" in types_
    retry = next(d for d in error["details"] if d["@type"].endswith("RetryInfo"))
    assert retry["retryDelay"] in ("1s", "2s")


def test_503_then_success_is_retried(client, limiter, base_url) -> None:
    set_faults(base_url, error_status=503, error_count=2)
    result = call(client, limiter)
    assert result.attempts == 3
    assert stats(base_url)["by_status"] == {"503": 2, "200": 1}


def test_500_every_time_gives_up_as_unavailable(client, limiter, base_url) -> None:
    set_faults(base_url, error_status=500, error_count=10)
    with pytest.raises(Unavailable, match="500"):
        call(client, limiter)
    assert stats(base_url)["by_status"] == {"500": FAST.max_attempts}


def test_a_slow_answer_times_out_and_is_retried(base_url, limiter) -> None:
    client = make_client(API_KEY, base_url, timeout_s=0.5)
    set_faults(base_url, delay_s=1.5, delay_count=1)
    assert call(client, limiter).attempts == 2
    # the abandoned slow request is still being answered: let it finish, so that it is not
    # logged in the next test's stats
    deadline = time.monotonic() + 5
    while len(stats(base_url)["log"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)


def test_max_tokens_is_an_error_not_a_result(client, limiter, base_url) -> None:
    set_faults(base_url, truncate_count=1)
    with pytest.raises(TruncatedOutput, match="MAX_TOKENS"):
        call(client, limiter)


def test_malformed_json_is_an_error(client, limiter, base_url) -> None:
    set_faults(base_url, malformed_json_count=1)
    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    with pytest.raises(MalformedOutput, match="invalid JSON"):
        call(client, limiter, response_mime_type="application/json", response_json_schema=schema)


def test_400_is_permanent_and_not_retried(client, limiter, base_url) -> None:
    set_faults(base_url, invalid_argument_match="POISON")
    with pytest.raises(GeminiRejected, match="INVALID_ARGUMENT") as raised:
        call(client, limiter, "a POISON prompt")
    assert raised.value.status_code == 400
    assert stats(base_url)["requests"] == 1


def test_wrong_key_is_rejected_without_leaking_it(base_url, limiter) -> None:
    client = make_client("wrong-key-value", base_url, timeout_s=10)
    with pytest.raises(GeminiRejected, match="API key not valid") as raised:
        call(client, limiter)
    assert "wrong-key-value" not in str(raised.value)
    missing = httpx.post(
        f"{base_url}/v1beta/models/{MODEL}:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"


def test_snake_case_keys_and_urlsafe_base64_are_read(base_url) -> None:
    buffer = io.BytesIO()
    Image.new("L", (300, 300)).save(buffer, "PNG")
    data = base64.urlsafe_b64encode(buffer.getvalue()).decode().rstrip("=")
    answer = httpx.post(
        f"{base_url}/v1/models/{MODEL}:countTokens",
        headers={"x-goog-api-key": API_KEY},
        json={"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": data}}]}]},
    )
    assert answer.json()["totalTokens"] == 258


def test_stats_log_every_request(client, limiter, base_url) -> None:
    call(client, limiter)
    call(client, limiter)
    log = stats(base_url)["log"]
    assert [entry["status"] for entry in log] == [200, 200]
    assert log[0]["t"] <= log[1]["t"]


def test_the_redis_limiter_takes_the_pause_for_every_process(tight_url, redis_prefix) -> None:
    client = make_client(API_KEY, tight_url, timeout_s=10)
    limiter = ratelimit.GeminiLimiter(
        redis.Redis.from_url(TEST_REDIS_URL), max_rpm=100, max_tpm=1_000_000, prefix=redis_prefix
    )
    time.sleep(2.1)  # an empty window at the stand-in
    results = [call(client, limiter) for _ in range(4)]
    assert [r.attempts for r in results][:3] == [1, 1, 1]
    assert results[3].attempts == 2  # the 4th met a 429, paused everyone, then went through


def test_a_quota_storm_answers_429s_with_its_retry_delay_counted_apart(
    client, limiter, base_url
) -> None:
    set_faults(base_url, rate_limit_count=2, rate_limit_retry_s=1)
    result = call(client, limiter)
    assert result.text and limiter.pauses == [1.0, 1.0]
    counters = stats(base_url)
    assert (counters["rate_limited"], counters["injected_rate_limited"]) == (2, 2)
    assert [e["injected"] for e in counters["log"]] == [True, True, False]
