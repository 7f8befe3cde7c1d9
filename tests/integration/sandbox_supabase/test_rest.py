from __future__ import annotations

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from supabase import Client

QUEUE = "extraction_queue"


def _seed(client: Client) -> list[dict]:
    rows = [
        {"document_number": "A-1", "document_source": "acte", "cadastre": "10", "attemtps": 2},
        {"document_number": "A-2", "document_source": "acte", "cadastre": None, "attemtps": 0},
        {"document_number": "I-1", "document_source": "index", "cadastre": "30", "attemtps": 1},
        {"document_number": "P 9", "document_source": "plan", "cadastre": "40", "attemtps": 5},
    ]
    return client.table(QUEUE).insert(rows).execute().data


def _numbers(response) -> list[str]:
    return [row["document_number"] for row in response.data]


def test_select_filters_order_limit_and_count(client: Client) -> None:
    """Filters combine with AND, order/limit/offset page, count=exact fills the total."""
    _seed(client)
    table = client.table(QUEUE)
    actes = table.select("document_number").eq("document_source", "acte").order("document_number")
    assert _numbers(actes.execute()) == ["A-1", "A-2"]
    retried = table.select("*").neq("document_source", "acte").gt("attemtps", 1)
    assert _numbers(retried.execute()) == ["P 9"]
    assert len(table.select("id").gte("attemtps", 1).lte("attemtps", 2).execute().data) == 2
    assert _numbers(table.select("document_number").lt("attemtps", 1).execute()) == ["A-2"]
    like = table.select("document_number").like("document_number", "A-*")
    assert _numbers(like.order("document_number", desc=True).execute()) == ["A-2", "A-1"]
    assert _numbers(table.select("document_number").ilike("document_number", "i%").execute()) == [
        "I-1"
    ]
    assert _numbers(table.select("document_number").is_("cadastre", None).execute()) == ["A-2"]
    assert len(table.select("id").not_.is_("cadastre", None).execute().data) == 3
    found = table.select("document_number").in_("document_number", ["A-1", "P 9", "x,y"]).execute()
    assert sorted(_numbers(found)) == ["A-1", "P 9"]
    assert len(table.select("id").not_.in_("document_source", ["acte", "plan"]).execute().data) == 1
    either = table.select("document_number").or_("attemtps.gte.5,document_number.eq.A-1")
    assert sorted(_numbers(either.execute())) == ["A-1", "P 9"]

    page = (
        table.select("document_number", count="exact")
        .order("attemtps", desc=True)
        .limit(2)
        .offset(1)
        .execute()
    )
    assert _numbers(page) == ["A-1", "I-1"]
    assert page.count == 4
    ranged = table.select("document_number").order("document_number").range(1, 2).execute()
    assert _numbers(ranged) == ["A-2", "I-1"]


def test_order_by_several_columns_with_nulls(client: Client) -> None:
    _seed(client)
    response = (
        client.table(QUEUE)
        .select("document_number")
        .order("cadastre", nullsfirst=True)
        .order("document_number", desc=True)
        .execute()
    )
    assert _numbers(response) == ["A-2", "A-1", "I-1", "P 9"]
    nulls_last = (
        client.table(QUEUE)
        .select("document_number")
        .order("cadastre", desc=True, nullsfirst=False)
        .execute()
    )
    assert _numbers(nulls_last) == ["P 9", "I-1", "A-1", "A-2"]


def test_select_alias_and_types_are_json_as_postgrest_gives_them(client: Client) -> None:
    _seed(client)
    row = (
        client.table(QUEUE)
        .select("number:document_number,status_id,created_at,lease_expires_at")
        .eq("document_number", "A-1")
        .single()
        .execute()
        .data
    )
    assert row["number"] == "A-1"
    assert row["status_id"] == 1
    assert row["created_at"].endswith("+00:00")
    assert row["lease_expires_at"] is None


def test_content_range_header_and_range_request(supabase_standin, client: Client) -> None:
    """Raw HTTP: Content-Range like PostgREST's, Range headers page, 206 on a partial answer."""
    _seed(client)
    key = supabase_standin.service_key
    headers = {"apikey": key, "Authorization": f"Bearer {key}", "Prefer": "count=exact"}
    url = f"{supabase_standin.url}/rest/v1/{QUEUE}"
    full = httpx.get(url, params={"select": "id"}, headers=headers)
    assert (full.status_code, full.headers["content-range"]) == (200, "0-3/4")
    partial = httpx.get(url, params={"select": "id"}, headers={**headers, "Range": "1-2"})
    assert (partial.status_code, partial.headers["content-range"]) == (206, "1-2/4")
    assert len(partial.json()) == 2
    empty = httpx.get(url, params={"select": "id", "document_number": "eq.none"}, headers=headers)
    assert empty.headers["content-range"] == "*/0"
    uncounted = httpx.get(
        url, params={"select": "id", "limit": "1"}, headers={**headers, "Prefer": ""}
    )
    assert uncounted.headers["content-range"] == "0-0/*"


def test_insert_update_delete(client: Client) -> None:
    """Insert returns the rows with defaults, update and delete only touch filtered rows."""
    inserted = client.table(QUEUE).insert({"document_number": "N-1"}).execute().data
    assert len(inserted) == 1
    row = inserted[0]
    assert row["status_id"] == 1 and row["attemtps"] == 0 and row["id"]
    client.table(QUEUE).insert({"document_number": "N-2"}, returning="minimal").execute()

    updated = (
        client.table(QUEUE)
        .update({"status_id": 3, "file_content": "texte"})
        .eq("id", row["id"])
        .execute()
        .data
    )
    assert [(r["status_id"], r["file_content"]) for r in updated] == [(3, "texte")]
    others = client.table(QUEUE).select("status_id").neq("id", row["id"]).execute().data
    assert others == [{"status_id": 1}]

    deleted = client.table(QUEUE).delete().eq("document_number", "N-2").execute().data
    assert [r["document_number"] for r in deleted] == ["N-2"]
    assert len(client.table(QUEUE).select("id").execute().data) == 1


def test_bulk_insert_fills_missing_keys_with_null(client: Client) -> None:
    """As PostgREST with ?columns=: a key missing from one object is NULL, not the default."""
    rows = (
        client.table(QUEUE)
        .insert([{"document_number": "B-1", "retry_count": 4}, {"document_number": "B-2"}])
        .execute()
        .data
    )
    assert [r["retry_count"] for r in rows] == [4, None]


def test_upsert_merges_on_primary_key_and_on_conflict(client: Client) -> None:
    first = client.table("extraction_status").upsert({"id": 9, "name": "Neuf"}).execute().data
    assert first == [{"id": 9, "name": "Neuf"}]
    merged = client.table("extraction_status").upsert({"id": 9, "name": "Nine"}).execute().data
    assert merged == [{"id": 9, "name": "Nine"}]
    explicit = (
        client.table("extraction_status")
        .upsert([{"id": 1, "name": "Waiting"}, {"id": 10, "name": "Dix"}], on_conflict="id")
        .execute()
        .data
    )
    assert sorted(r["id"] for r in explicit) == [1, 10]
    ignored = (
        client.table("extraction_status")
        .upsert({"id": 1, "name": "ignored"}, ignore_duplicates=True)
        .execute()
        .data
    )
    assert ignored == []
    names = client.table("extraction_status").select("name").in_("id", [1, 9, 10]).order("id")
    assert [r["name"] for r in names.execute().data] == ["Waiting", "Nine", "Dix"]


def test_single_and_maybe_single(client: Client) -> None:
    _seed(client)
    one = client.table(QUEUE).select("document_number").eq("document_number", "I-1").single()
    assert one.execute().data == {"document_number": "I-1"}
    none = client.table(QUEUE).select("id").eq("document_number", "nope").maybe_single().execute()
    assert none is None


def test_rpc_claim_returns_rows_and_renew_returns_boolean(client: Client) -> None:
    _seed(client)
    claimed = (
        client.rpc(
            "registre_claim_v1",
            {
                "p_stage": "registre",
                "p_owner": "worker-1",
                "p_limit": 2,
                "p_lease_seconds": 60,
                "p_from_status": 1,
                "p_to_status": 2,
                "p_sources": ["acte"],
            },
        )
        .execute()
        .data
    )
    assert sorted(r["document_number"] for r in claimed) == ["A-1", "A-2"]
    assert all(r["status_id"] == 2 and r["lease_owner"] == "worker-1" for r in claimed)

    renew = {"p_id": claimed[0]["id"], "p_owner": "worker-1", "p_lease_seconds": 30}
    assert client.rpc("registre_renew_lease_v1", renew).execute().data is True
    stolen = {**renew, "p_owner": "worker-2"}
    assert client.rpc("registre_renew_lease_v1", stolen).execute().data is False


def test_rpc_default_argument_filters_and_queue_counts(client: Client) -> None:
    _seed(client)
    args = {
        "p_stage": "registre",
        "p_owner": "w",
        "p_limit": 10,
        "p_lease_seconds": 60,
        "p_from_status": 1,
        "p_to_status": 2,
    }
    claim = client.rpc("registre_claim_v1", args).select("document_number")
    claimed = claim.eq("document_source", "acte").order("document_number").execute().data
    assert claimed == [{"document_number": "A-1"}, {"document_number": "A-2"}]
    counts = client.rpc("registre_queue_counts_v1", {}).execute().data
    by_source = sorted((c["status_id"], c["document_source"], c["jobs"]) for c in counts)
    assert by_source == [(2, "acte", 2), (2, "index", 1), (2, "plan", 1)]


def test_rpc_with_get_runs_read_only(client: Client) -> None:
    _seed(client)
    counts = client.rpc("registre_queue_counts_v1", {}, get=True).execute().data
    assert sum(c["jobs"] for c in counts) == 4


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_write_without_filter_is_refused_like_supabase(client: Client, method: str) -> None:
    """Supabase's PostgREST runs pg-safeupdate: UPDATE/DELETE need a WHERE clause."""
    _seed(client)
    builder = client.table(QUEUE)
    query = builder.update({"status_id": 5}) if method == "patch" else builder.delete()
    with pytest.raises(APIError) as caught:
        query.execute()
    assert caught.value.code == "21000"
    assert len(client.table(QUEUE).select("id").eq("status_id", 1).execute().data) == 4


def test_rpc_with_count_runs_the_function_once(supabase_standin, client: Client) -> None:
    with psycopg.connect(supabase_standin.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION standin_tick() RETURNS SETOF extraction_status LANGUAGE sql AS $$ "
            "INSERT INTO extraction_status (id, name) SELECT max(id) + 1, 'tick' "
            "FROM extraction_status RETURNING * $$"
        )
    response = client.rpc("standin_tick", {}, count="exact").execute()
    assert (len(response.data), response.count) == (1, 1)
    ticks = client.table("extraction_status").select("id").eq("name", "tick").execute().data
    assert len(ticks) == 1
