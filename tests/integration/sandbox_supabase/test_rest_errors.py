from __future__ import annotations

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from supabase import Client, create_client

QUEUE = "extraction_queue"


def _raised(query) -> APIError:
    with pytest.raises(APIError) as caught:
        query.execute()
    return caught.value


def _status(standin, method: str, path: str, **kwargs) -> tuple[int, dict]:
    key = standin.service_key
    headers = {"apikey": key, "Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    response = httpx.request(method, f"{standin.url}/rest/v1/{path}", headers=headers, **kwargs)
    return response.status_code, response.json()


def test_unknown_column_in_body_is_pgrst204(supabase_standin, client: Client) -> None:
    error = _raised(client.table(QUEUE).insert({"document_number": "1", "nope": 1}))
    assert error.code == "PGRST204"
    assert (
        error.message
        == "Could not find the 'nope' column of 'extraction_queue' in the schema cache"
    )
    status, _ = _status(supabase_standin, "PATCH", f"{QUEUE}?id=eq.x", json={"nope": 1})
    assert status == 400


@pytest.mark.parametrize(
    "params",
    [
        {"select": "id,nope"},
        {"select": "id", "nope": "eq.1"},
        {"select": "id", "order": "nope.desc"},
    ],
)
def test_unknown_column_in_select_filter_or_order_is_42703(supabase_standin, params) -> None:
    status, body = _status(supabase_standin, "GET", QUEUE, params=params)
    assert (status, body["code"]) == (400, "42703")
    assert body["message"] == "column extraction_queue.nope does not exist"


def test_unknown_column_through_the_client(client: Client) -> None:
    assert _raised(client.table(QUEUE).select("id").eq("nope", 1)).code == "42703"


def test_unknown_table_is_pgrst205(supabase_standin, client: Client) -> None:
    error = _raised(client.table("nowhere").select("*"))
    assert error.code == "PGRST205"
    assert error.message == "Could not find the table 'public.nowhere' in the schema cache"
    assert _status(supabase_standin, "GET", "nowhere")[0] == 404


def test_unknown_function_is_pgrst202(supabase_standin, client: Client) -> None:
    error = _raised(client.rpc("registre_nothing_v1", {"a": 1}))
    assert error.code == "PGRST202"
    assert (
        error.message
        == "Could not find the function public.registre_nothing_v1(a) in the schema cache"
    )
    wrong_args = _raised(client.rpc("registre_renew_lease_v1", {"p_id": "x"}))
    assert wrong_args.code == "PGRST202"
    assert _status(supabase_standin, "POST", "rpc/registre_nothing_v1", json={})[0] == 404


def test_unique_violation_is_409(supabase_standin, client: Client) -> None:
    error = _raised(client.table("extraction_status").insert({"id": 1, "name": "again"}))
    assert error.code == "23505"
    assert "duplicate key value violates unique constraint" in error.message
    assert error.details == "Key (id)=(1) already exists."
    body = {"id": 1, "name": "again"}
    assert _status(supabase_standin, "POST", "extraction_status", json=body)[0] == 409


def test_not_null_and_bad_input_are_400(supabase_standin, client: Client) -> None:
    error = _raised(client.table(QUEUE).insert({"document_number": "1", "status_id": None}))
    assert error.code == "23502"
    assert _status(supabase_standin, "POST", QUEUE, json={"status_id": None})[0] == 400
    bad_uuid = _raised(client.table(QUEUE).select("id").eq("id", "not-a-uuid"))
    assert bad_uuid.code == "22P02"
    assert _status(supabase_standin, "GET", QUEUE, params={"id": "eq.not-a-uuid"})[0] == 400


def test_check_violation_and_raise_carry_message_details_hint(supabase_standin, client) -> None:
    """Objects created after start are found by reloading the schema cache on a miss."""
    with psycopg.connect(supabase_standin.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE standin_checked (id int PRIMARY KEY, n int CHECK (n > 0))")
        conn.execute(
            "CREATE FUNCTION standin_fail(reason text) RETURNS void LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'refused: %', reason USING DETAIL = 'the detail', "
            "HINT = 'the hint'; END $$"
        )
    check = _raised(client.table("standin_checked").insert({"id": 1, "n": 0}))
    assert check.code == "23514"
    assert _status(supabase_standin, "POST", "standin_checked", json={"id": 1, "n": -1})[0] == 400
    raised = _raised(client.rpc("standin_fail", {"reason": "because"}))
    assert (raised.code, raised.message) == ("P0001", "refused: because")
    assert (raised.details, raised.hint) == ("the detail", "the hint")
    assert _status(supabase_standin, "POST", "rpc/standin_fail", json={"reason": "x"})[0] == 400


def test_single_on_zero_or_many_rows_is_406_pgrst116(supabase_standin, client: Client) -> None:
    client.table(QUEUE).insert([{"document_number": "1"}, {"document_number": "2"}]).execute()
    none = _raised(client.table(QUEUE).select("id").eq("document_number", "0").single())
    assert (none.code, none.details) == ("PGRST116", "The result contains 0 rows")
    many = _raised(client.table(QUEUE).select("id").single())
    assert (many.code, many.details) == ("PGRST116", "The result contains 2 rows")
    accept = {"Accept": "application/vnd.pgrst.object+json"}
    assert _status(supabase_standin, "GET", QUEUE, headers=accept)[0] == 406


def test_single_write_on_many_rows_rolls_back(client: Client) -> None:
    client.table(QUEUE).insert([{"document_number": "1"}, {"document_number": "2"}]).execute()
    error = _raised(client.table(QUEUE).update({"status_id": 5}).gte("status_id", 1).single())
    assert error.code == "PGRST116"
    assert client.table(QUEUE).select("id").eq("status_id", 5).execute().data == []


def test_wrong_or_missing_key_is_401(supabase_standin) -> None:
    wrong = create_client(supabase_standin.url, "not-the-service-key")
    error = _raised(wrong.table(QUEUE).select("*"))
    assert error.message == "Invalid API key"
    url = f"{supabase_standin.url}/rest/v1/{QUEUE}"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json()["message"] == "No API key found in request"
    key = supabase_standin.service_key
    bad_bearer = httpx.get(url, headers={"apikey": key, "Authorization": "Bearer other"})
    assert bad_bearer.status_code == 401
    storage = httpx.get(f"{supabase_standin.url}/storage/v1/bucket", headers={"apikey": "x"})
    assert storage.status_code == 401
