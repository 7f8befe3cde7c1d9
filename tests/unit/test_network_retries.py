"""The queue's one retry policy: dropped connections are retried for calls safe to repeat, and
a call that is not (an insert) is tried again only when it never left, its failure saying
whether it may have been made."""

from __future__ import annotations

import httpx
import pytest
from postgrest.exceptions import APIError

from tasks.queue import client as supabase_client
from tasks.queue.client import QueueError, with_network_retries


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supabase_client, "NETWORK_BACKOFF", 0)


def failing(*errors: Exception):
    """A call that raises `errors` in turn, then answers "done"; `calls` counts the tries."""
    pending = list(errors)

    def call() -> str:
        call.calls += 1  # type: ignore[attr-defined]
        if pending:
            raise pending.pop(0)
        return "done"

    call.calls = 0  # type: ignore[attr-defined]
    return call


def test_a_dropped_connection_is_retried_when_the_call_can_be_repeated():
    call = failing(httpx.RemoteProtocolError("Server disconnected"), httpx.ReadTimeout("slow"))
    assert with_network_retries(call, "prod: claim") == "done"
    assert call.calls == 3


def test_a_call_that_cannot_be_repeated_is_made_once_and_says_it_may_have_been_made():
    call = failing(httpx.ReadTimeout("slow"))
    with pytest.raises(QueueError) as raised:
        with_network_retries(call, "prod: add", repeatable=False)
    assert call.calls == 1
    assert raised.value.reason.startswith("Supabase unreachable (ReadTimeout)")
    assert "may have been written" in raised.value.reason


def test_a_call_that_never_left_is_tried_again_even_when_it_cannot_be_repeated():
    call = failing(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"))
    assert with_network_retries(call, "prod: add", repeatable=False) == "done"
    assert call.calls == 3


def test_a_connection_never_made_says_nothing_was_written():
    call = failing(*[httpx.ConnectError("refused")] * 5)
    with pytest.raises(QueueError) as raised:
        with_network_retries(call, "prod: add", repeatable=False)
    assert (call.calls, raised.value.reason) == (5, "Supabase unreachable (ConnectError)")


def test_a_refused_request_is_not_retried_and_keeps_supabases_words():
    refused = APIError({"message": "null value in column", "code": "23502", "hint": None})
    call = failing(refused)
    with pytest.raises(QueueError, match="prod: add: Supabase refused the request: null value"):
        with_network_retries(call, "prod: add")
    assert call.calls == 1


def test_a_gateway_error_is_retried_but_a_refused_row_with_a_five_digit_sqlstate_is_not():
    gateway = APIError({"message": "Bad Gateway", "code": "502", "hint": None})
    assert with_network_retries(failing(gateway), "prod: claim") == "done"
    unique = APIError({"message": "duplicate key value", "code": "23505", "hint": None})
    with pytest.raises(QueueError, match="refused the request: duplicate key value"):
        with_network_retries(failing(unique), "prod: add")
