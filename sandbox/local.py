"""The whole system on one machine, without credentials: the Supabase, registry and Gemini
stand-ins, then `registre up` pointed at them. What `bash scripts/run` starts when no Supabase
environment is configured.

    .venv/bin/python -m sandbox.local
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from deployments.migrations import apply_migrations
from sandbox import gemini
from sandbox.postgres import ADMIN_DSN, insert_registry_accounts
from sandbox.registry import serve as serve_registry
from sandbox.registry.catalogue import INDEX_DOCUMENTS
from sandbox.supabase import serve as serve_supabase

DATABASE = "registre_local"
PORTS = {"supabase": 54321, "registry": 8401, "gemini": 8402}


def local_database() -> str:
    """The demo's database (kept between runs), migrated, with the stand-in's accounts."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{DATABASE}"
    apply_migrations(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM worker_accounts LIMIT 1").fetchone():
            insert_registry_accounts(conn)
    return dsn


def main() -> None:
    run_dir = Path(".run")
    run_dir.mkdir(exist_ok=True)
    service_key, gemini_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    dsn = local_database()
    with (
        serve_supabase(dsn, service_key, run_dir / "storage", port=PORTS["supabase"]) as supabase,
        serve_registry(port=PORTS["registry"]) as registry,
        gemini.serve(gemini_key, rpm=1600, tpm=6_400_000, port=PORTS["gemini"]) as gemini_url,
    ):
        os.environ.update({
            "DEV_SUPABASE_URL": supabase,
            "DEV_SUPABASE_SERVICE_KEY": service_key,
            "REGISTRY_BASE_URL": registry,
            "GEMINI_BASE_URL": gemini_url,
            "GEMINI_API_KEY": gemini_key,
        })  # fmt: skip
        env_file = run_dir / "local.env"
        env_file.write_text(
            f"DEV_SUPABASE_URL={supabase}\nDEV_SUPABASE_SERVICE_KEY={service_key}\n"
        )
        env_file.chmod(0o600)
        doc = INDEX_DOCUMENTS[0]
        print(
            f"stand-ins: Supabase {supabase} (database {DATABASE}), registry {registry}/Sirf/,"
            f" Gemini {gemini_url}\nto add a request, from another shell:\n"
            f"  set -a; . {env_file}; set +a\n"
            f"  .venv/bin/registre queue add index --number '{doc.lot}'"
            f" --circonscription '{doc.circonscription}' --cadastre '{doc.cadastre}'",
            flush=True,
        )
        registre = str(Path(sys.executable).with_name("registre"))
        # its own session: each Ctrl-C here is forwarded once (the first drains the runs in
        # progress, a second stops them), then the stand-ins stop after it
        up = subprocess.Popen([registre, "up", *sys.argv[1:]], start_new_session=True)
        signal.signal(signal.SIGINT, lambda *_: up.send_signal(signal.SIGINT))
        signal.signal(signal.SIGTERM, lambda *_: up.send_signal(signal.SIGTERM))
        up.wait()

if __name__ == "__main__":
    main()
