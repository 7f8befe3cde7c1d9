"""The whole system on one machine, without credentials: the Supabase, registry and Gemini
stand-ins, then `registre up` pointed at them. What `bash scripts/run` starts when no Supabase
environment is configured.

    .venv/bin/python -m sandbox.local [--run-dir DIR] [registre up's options]

SANDBOX_DATABASE (registre_local) and SANDBOX_SUPABASE_PORT / _REGISTRY_PORT / _GEMINI_PORT
(54321, 8401, 8402) move it aside, so a second one can run beside it (the stop test does).
SIGTERM, SIGHUP or Ctrl-C stops it all: `registre up` drains first (a second signal hurries
it), then the stand-ins stop, then whatever any of them left running is stopped.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

from deployments.migrations import apply_migrations
from deployments.processes import STOP_SIGNALS, process_tree
from sandbox import gemini
from sandbox.postgres import ADMIN_DSN, insert_registry_accounts
from sandbox.registry import serve as serve_registry
from sandbox.registry.catalogue import INDEX_DOCUMENTS
from sandbox.supabase import serve as serve_supabase

DATABASE = "registre_local"
PORTS = {"supabase": 54321, "registry": 8401, "gemini": 8402}


def local_database(database: str) -> str:
    """The demo's database (kept between runs), migrated, with the stand-in's accounts."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    apply_migrations(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM worker_accounts LIMIT 1").fetchone():
            insert_registry_accounts(conn)
    return dsn


@contextmanager
def terminal_signals_blocked() -> Iterator[None]:
    """What starts inside ignores a terminal's Ctrl-C and hang-up (a blocked signal stays blocked
    across exec). The stand-ins share this process group, so the terminal signals them too, but
    they must keep answering while `registre up` drains; they are stopped last, with SIGTERM."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run(run_dir: Path, up_args: list[str]) -> int:
    up: subprocess.Popen[bytes] | None = None

    def on_stop(signum: int, frame: object) -> None:
        if up is None:  # still starting: unwind, stopping the stand-ins already up
            raise KeyboardInterrupt(signal.Signals(signum).name)
        # each is passed on once: the first drains the runs in progress, a second stops them
        up.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_stop)
    run_dir.mkdir(parents=True, exist_ok=True)
    service_key, gemini_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    dsn = local_database(os.environ.get("SANDBOX_DATABASE", DATABASE))
    ports = {name: int(os.environ.get(f"SANDBOX_{name.upper()}_PORT", port))
             for name, port in PORTS.items()}  # fmt: skip
    with ExitStack() as stack:
        with terminal_signals_blocked():
            supabase = stack.enter_context(
                serve_supabase(dsn, service_key, run_dir / "storage", port=ports["supabase"])
            )
            registry = stack.enter_context(serve_registry(port=ports["registry"]))
            gemini_url = stack.enter_context(
                gemini.serve(gemini_key, rpm=1600, tpm=6_400_000, port=ports["gemini"])
            )
        nominal = {"SERVER_MAX_CPU": "8", "SERVER_MAX_RAM": "16", "OCR_WORKER_POOL_SIZE": "2"}
        if not any(os.environ.get(name) for name in ("SERVER_MAX_CPU", "SERVER_MAX_RAM")):
            # The stand-ins are light: size the host as the seed's reference one, so that the
            # demo runs on a laptop whose own budget holds no registre run of the cost table.
            os.environ.update({k: os.environ.get(k) or v for k, v in nominal.items()})
            print(
                "local mode: a nominal 8 vCPU / 16 GB host with 1 registre and 2 OCR runs"
                " (set SERVER_MAX_CPU / SERVER_MAX_RAM to size it yourself)",
                flush=True,
            )
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
            f"stand-ins: Supabase {supabase} (database {dsn.rsplit('/', 1)[1]}),"
            f" registry {registry}/Sirf/, Gemini {gemini_url}\n"
            "to add a request, from another shell:\n"
            f"  set -a; . {env_file}; set +a\n"
            f"  .venv/bin/registre queue add index --number '{doc.lot}'"
            f" --circonscription '{doc.circonscription}' --cadastre '{doc.cadastre}'",
            flush=True,
        )
        registre = str(Path(sys.executable).with_name("registre"))
        # its own session: a terminal's Ctrl-C reaches this process only, which passes it on
        up = subprocess.Popen([registre, "up", *up_args], start_new_session=True)
        up.wait()
    return up.returncode if up.returncode >= 0 else 128 - up.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path(".run"), help="logs and state")
    run_dir = parser.parse_known_args()[0].run_dir
    try:
        with process_tree():
            code = run(run_dir, sys.argv[1:])  # --run-dir goes on to `registre up` too
    except KeyboardInterrupt:
        print("stopped before the system was up", flush=True)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
