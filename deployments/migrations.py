from __future__ import annotations

from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "supabase" / "migrations"


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def apply_migrations(dsn: str) -> list[str]:
    """Apply every migration, in order, to a PostgreSQL database (they are idempotent).

    For operators without the Supabase CLI; `supabase db push` applies the same files."""
    applied = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in migration_files():
            conn.execute(path.read_text())
            applied.append(path.name)
    return applied
