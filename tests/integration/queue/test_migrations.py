from __future__ import annotations

import psycopg

from deployments.migrations import apply_migrations
from sandbox.postgres import drop_database

# A database as NotaFlow has it: its own status names, an older extraction_queue missing the
# columns of migrations 004/005 and ours, a worker_accounts table, and rows in flight.
NOTAFLOW = """
CREATE TABLE extraction_status (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO extraction_status VALUES (1, 'En attente'), (2, 'En traitement'), (3, 'Complété'),
    (4, 'Erreur'), (5, 'Extraction Complété'), (6, 'OCR en traitement');
CREATE TABLE extraction_queue (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_source text, document_number text, status_id integer DEFAULT 1,
    attemtps integer DEFAULT 0, file_content text, custom_notaflow_column text,
    created_at timestamptz DEFAULT now());
INSERT INTO extraction_queue (document_source, document_number, status_id, file_content,
    custom_notaflow_column) VALUES ('index', '856', 5, 'texte', 'kept');
CREATE TABLE worker_accounts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), username text,
    password text, is_active boolean DEFAULT true, last_used timestamptz,
    failure_count integer DEFAULT 0);
INSERT INTO worker_accounts (username, password) VALUES ('agent', 'secret');
"""


def columns(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
    ).fetchall()
    return {r[0] for r in rows}


def test_migrations_are_additive_and_idempotent_on_an_existing_notaflow_database():
    from sandbox.postgres import ADMIN_DSN

    name = "rf_test_notaflow"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(NOTAFLOW)
            before = columns(conn, "extraction_queue")

        apply_migrations(dsn)
        apply_migrations(dsn)  # a second time changes nothing and fails on nothing

        with psycopg.connect(dsn, autocommit=True) as conn:
            after = columns(conn, "extraction_queue")
            assert before < after
            assert {
                "lease_owner",
                "lease_expires_at",
                "ocr_attempts",
                "boosted_file_content",
                "structured_content",
                "attemtps",
            } <= after
            row = conn.execute(
                "SELECT status_id, file_content, custom_notaflow_column, attemtps"
                " FROM extraction_queue"
            ).fetchone()
            assert row == (5, "texte", "kept", 0)
            names = dict(conn.execute("SELECT id, name FROM extraction_status").fetchall())
            assert names[4] == "Erreur" and names[6] == "OCR en traitement"
            assert conn.execute("SELECT username, password FROM worker_accounts").fetchall() == [
                ("agent", "secret")
            ]
    finally:
        drop_database(dsn)


SUPABASE_ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS;
    END IF;
END $$;
"""
WORKER_TABLES = ("extraction_queue", "extraction_status", "worker_accounts")


def test_only_the_service_role_reaches_our_tables_and_functions_which_fix_their_search_path():
    from sandbox.postgres import ADMIN_DSN, create_database

    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(SUPABASE_ROLES)  # Supabase's roles (cluster-wide), as a project has them
    dsn = create_database()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            # as Supabase grants them by default on `public`: our migrations must take them back
            conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated")
            apply_migrations(dsn)
            functions = conn.execute(
                "SELECT p.oid::regprocedure::text, p.proconfig,"
                " has_function_privilege('anon', p.oid, 'EXECUTE'),"
                " has_function_privilege('authenticated', p.oid, 'EXECUTE'),"
                " has_function_privilege('service_role', p.oid, 'EXECUTE')"
                " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' AND p.proname LIKE 'registre%%'"
            ).fetchall()
            assert len(functions) >= 12
            for name, config, anon, authenticated, service in functions:
                assert any(c.startswith("search_path=") for c in config or []), name
                assert (anon, authenticated, service) == (False, False, True), name
            for table in WORKER_TABLES:
                secured = conn.execute(
                    "SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (table,)
                ).fetchone()[0]
                assert secured, f"{table}: RLS is off"
            conn.execute("INSERT INTO worker_accounts (username, password) VALUES ('a', 'pw')")
            conn.execute("INSERT INTO extraction_queue (document_source) VALUES ('index')")
            conn.execute("SET ROLE anon")
            for table in WORKER_TABLES:
                try:  # refused outright, or RLS shows nothing
                    seen = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                except psycopg.errors.InsufficientPrivilege:
                    seen = 0
                assert seen == 0, f"anon reads {seen} rows of {table}"
            conn.execute("RESET ROLE")
    finally:
        drop_database(dsn)
