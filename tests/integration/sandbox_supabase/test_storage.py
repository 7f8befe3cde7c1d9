from __future__ import annotations

import httpx
import pytest
from storage3.exceptions import StorageApiError
from supabase import Client, create_client

from sandbox.supabase import serve

PDF = b"%PDF-1.7\r\n--boundary-like\r\n\x00\xff binary tail"


def _raised(call, *args, **kwargs) -> StorageApiError:
    with pytest.raises(StorageApiError) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.fixture
def bucket(client: Client):
    client.storage.create_bucket("registre")
    return client.storage.from_("registre")


def test_buckets_create_get_list_delete(client: Client) -> None:
    client.storage.create_bucket("docs", options={"public": True})
    assert client.storage.get_bucket("docs").public is True
    assert [b.id for b in client.storage.list_buckets()] == ["docs"]
    duplicate = _raised(client.storage.create_bucket, "docs")
    assert (duplicate.status, duplicate.code) == ("409", "Duplicate")
    client.storage.delete_bucket("docs")
    missing = _raised(client.storage.get_bucket, "docs")
    assert (missing.status, missing.message) == ("404", "Bucket not found")


def test_upload_and_download_keep_bytes_and_content_type(supabase_standin, bucket) -> None:
    uploaded = bucket.upload("2026/acte 1.pdf", PDF, {"content-type": "application/pdf"})
    assert uploaded.full_path == "registre/2026/acte 1.pdf"
    assert bucket.download("2026/acte 1.pdf") == PDF
    key = supabase_standin.service_key
    raw = httpx.get(
        f"{supabase_standin.url}/storage/v1/object/authenticated/registre/2026/acte%201.pdf",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )
    assert raw.content == PDF
    assert raw.headers["content-type"] == "application/pdf"
    info = bucket.info("2026/acte 1.pdf")
    assert (info["size"], info["content_type"]) == (len(PDF), "application/pdf")
    assert bucket.exists("2026/acte 1.pdf") is True
    assert bucket.exists("2026/other.pdf") is False


def test_duplicate_upload_is_refused_unless_upsert(bucket) -> None:
    bucket.upload("a.txt", b"one")
    duplicate = _raised(bucket.upload, "a.txt", b"two")
    assert (duplicate.status, duplicate.code, duplicate.message) == (
        "409",
        "Duplicate",
        "The resource already exists",
    )
    bucket.upload("a.txt", b"two", {"upsert": "true"})
    assert bucket.download("a.txt") == b"two"
    bucket.update("a.txt", b"three")
    assert bucket.download("a.txt") == b"three"
    missing_update = _raised(bucket.update, "b.txt", b"x")
    assert missing_update.status == "404"


def test_missing_object_and_bucket_errors(client: Client, bucket) -> None:
    missing = _raised(bucket.download, "nothing.pdf")
    assert (missing.status, missing.code, missing.message) == (
        "404",
        "not_found",
        "Object not found",
    )
    no_bucket = _raised(client.storage.from_("elsewhere").upload, "a.txt", b"x")
    assert (no_bucket.status, no_bucket.message) == ("404", "Bucket not found")


def test_list_with_prefix_limit_offset_search(bucket) -> None:
    for name in ["2026/b.pdf", "2026/a.pdf", "2026/sub/c.pdf", "2025/d.pdf", "root.txt"]:
        bucket.upload(name, b"x")
    assert [e["name"] for e in bucket.list()] == ["2025", "2026", "root.txt"]
    entries = bucket.list("2026")
    assert [e["name"] for e in entries] == ["a.pdf", "b.pdf", "sub"]
    assert entries[0]["metadata"]["size"] == 1 and entries[2]["id"] is None
    paged = bucket.list("2026", {"limit": 1, "offset": 1})
    assert [e["name"] for e in paged] == ["b.pdf"]
    assert [e["name"] for e in bucket.list("2026", {"search": "b"})] == ["b.pdf"]
    desc = bucket.list("2026", {"sortBy": {"column": "name", "order": "desc"}})
    assert [e["name"] for e in desc] == ["sub", "b.pdf", "a.pdf"]


def test_remove_returns_the_removed_objects(bucket) -> None:
    bucket.upload("x/1.pdf", b"1")
    bucket.upload("x/2.pdf", b"2")
    removed = bucket.remove(["x/1.pdf", "x/absent.pdf"])
    assert [r["name"] for r in removed] == ["x/1.pdf"]
    assert [e["name"] for e in bucket.list("x")] == ["2.pdf"]


def test_signed_url_serves_without_key_until_tampered(bucket) -> None:
    bucket.upload("s/doc.pdf", PDF, {"content-type": "application/pdf"})
    signed = bucket.create_signed_url("s/doc.pdf", 60)["signedURL"]
    response = httpx.get(signed)
    assert (response.status_code, response.content) == (200, PDF)
    tampered = httpx.get(signed.replace("doc.pdf", "other.pdf"))
    assert tampered.status_code == 400
    forged = httpx.get(signed[:-3] + "abc")
    assert forged.json()["error"] == "InvalidJWT"
    many = bucket.create_signed_urls(["s/doc.pdf", "s/none.pdf"], 60)
    assert httpx.get(many[0]["signedURL"]).content == PDF
    assert many[1]["signedURL"] is None and many[1]["error"]


def test_public_url_only_for_public_buckets(client: Client, bucket) -> None:
    bucket.upload("p.txt", b"private")
    assert httpx.get(bucket.get_public_url("p.txt")).status_code == 400
    client.storage.create_bucket("open", options={"public": True})
    public = client.storage.from_("open")
    public.upload("p.txt", b"public")
    assert httpx.get(public.get_public_url("p.txt")).content == b"public"


def test_move_and_copy(bucket) -> None:
    bucket.upload("m/a.txt", b"a")
    bucket.copy("m/a.txt", "m/b.txt")
    bucket.move("m/a.txt", "m/c.txt")
    assert [e["name"] for e in bucket.list("m")] == ["b.txt", "c.txt"]
    assert bucket.download("m/c.txt") == b"a"


def test_objects_survive_a_restart(supabase_standin) -> None:
    key = supabase_standin.service_key
    client = create_client(supabase_standin.url, key)
    client.storage.create_bucket("keep")
    client.storage.from_("keep").upload("k.txt", b"kept")
    with serve(supabase_standin.dsn, key, supabase_standin.storage_dir) as url:
        again = create_client(url, key).storage.from_("keep")
        assert again.download("k.txt") == b"kept"


def test_signed_upload_url(bucket) -> None:
    signed = bucket.create_signed_upload_url("up/doc.pdf")
    bucket.upload_to_signed_url(
        "up/doc.pdf", signed["token"], PDF, {"content-type": "application/pdf"}
    )
    assert bucket.download("up/doc.pdf") == PDF
    again = _raised(bucket.upload_to_signed_url, "up/doc.pdf", signed["token"], b"x")
    assert again.code == "Duplicate"
    as_download = httpx.get(signed["signed_url"].replace("/upload/sign/", "/sign/"))
    assert as_download.status_code == 400
