from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from supabase import create_client
from typer.testing import CliRunner

from sandbox.supabase import serve
from sandbox.supabase.cli import app

CLIENTS = 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_on_a_given_port_and_stops_afterwards(pg_dsn: str, tmp_path: Path) -> None:
    port = _free_port()
    with serve(pg_dsn, "key-1", tmp_path, port=port) as url:
        assert url == f"http://127.0.0.1:{port}"
        headers = {"apikey": "key-1", "Authorization": "Bearer key-1"}
        assert httpx.get(f"{url}/rest/v1/", headers=headers).status_code == 200
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_concurrent_claims_never_hand_a_row_out_twice(supabase_standin) -> None:
    """16 clients claim at once through the stand-in; SKIP LOCKED runs in the real database."""
    key = supabase_standin.service_key
    seed = create_client(supabase_standin.url, key)
    seed.table("extraction_queue").insert(
        [{"document_number": str(i)} for i in range(64)]
    ).execute()

    def claim(worker: int) -> list[str]:
        client = create_client(supabase_standin.url, key)
        args = {
            "p_stage": "registre",
            "p_owner": f"w{worker}",
            "p_limit": 4,
            "p_lease_seconds": 60,
            "p_from_status": 1,
            "p_to_status": 2,
        }
        return [row["id"] for row in client.rpc("registre_claim_v1", args).execute().data]

    with ThreadPoolExecutor(CLIENTS) as pool:
        claimed = [row for rows in pool.map(claim, range(CLIENTS)) for row in rows]
    assert len(claimed) == len(set(claimed)) == 64


def test_cli_needs_the_key_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("SANDBOX_SUPABASE_SERVICE_KEY", raising=False)
    result = CliRunner().invoke(app, ["--dsn", "postgresql://nowhere/db", "--port", "0"])
    assert result.exit_code != 0
    assert "SANDBOX_SUPABASE_SERVICE_KEY" in result.output
