"""extraction_queue at production size, generated in SQL (generate_series), for the queue-scale
benchmark and the plan tests: finished rows as real ones are (a year of history, some of it
today, OCR text of a few KB, costs) and a live backlog (waiting, ready for OCR, held under a
lease, held back by retry_after). Seed status ids (tasks/queue/statuses.py SEED)."""

from __future__ import annotations

import psycopg

SOURCES = "(ARRAY['index', 'acte', 'plan_cadastraux'])[1 + g %% 3]"

# One in ten finished rows is in error (5), the rest done (4). Ages spread over a year; one row in
# 200 is from today (since UTC midnight), whenever the benchmark runs. Inserted oldest first, so
# that the heap is in time order, as a table that grew over the year is.
FINISHED = f"""
INSERT INTO extraction_queue (
    document_source, document_number, cadastre, circonscription_fonciere, acte_type, status_id,
    attemtps, ocr_attempts, supabase_path, error_message, ocr_error, file_content,
    boosted_file_content, lease_owner, lease_stage, created_at, updated_at, downloaded_at,
    registry_cost_usd, gemini_usage, gemini_cost_usd, gemini_cost_at)
SELECT {SOURCES}, g::text, 'Cadastre du Québec', 'Montréal',
       CASE WHEN g %% 3 = 1 THEN 'Vente' END,
       CASE WHEN g %% 10 = 0 THEN 5 ELSE 4 END,
       1, CASE WHEN g %% 3 = 2 THEN 0 ELSE 1 END,
       'index/' || g || '.pdf',
       CASE WHEN g %% 20 = 0 THEN 'registry: document inexistant' END,
       CASE WHEN g %% 20 = 10 THEN 'Gemini refused the document' END,
       repeat(md5(g::text) || ' ', 40 + g %% 40),
       repeat(md5((g + 1)::text) || ' ', 40 + g %% 40),
       'ocr-index/' || md5(g::text), 'ocr', t.at, t.at + interval '10 minutes',
       t.at + interval '3 minutes', 1.25,
       jsonb_build_object('gemini-2.5-flash', jsonb_build_object(
           'input_tokens', 4000 + g %% 997, 'output_tokens', 900, 'cost_usd', 0.0035)),
       0.0035, t.at + interval '8 minutes'
  FROM (SELECT g FROM generate_series(1, %(rows)s) g  -- oldest first, as a real table grows
         ORDER BY g %% 200 = 0, g DESC) s,
       LATERAL (SELECT CASE
           WHEN g %% 200 = 0 THEN date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                + (now() - (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'))
                  * (g %% 997) / 1000.0
           ELSE now() - interval '1 day' - interval '364 days' * g / %(rows)s END AS at) t
"""

# 40% waiting (a quarter of those held back by retry_after), 30% ready for OCR, 20% downloading
# under a lease (one in ten of those expired), 10% in OCR under a lease.
BACKLOG = f"""
INSERT INTO extraction_queue (
    document_source, document_number, cadastre, circonscription_fonciere, acte_type, status_id,
    supabase_path, lease_owner, lease_stage, lease_expires_at, retry_after, created_at, updated_at)
SELECT {SOURCES}, 'b' || g, 'Cadastre du Québec', 'Montréal',
       CASE WHEN g %% 3 = 1 THEN 'Vente' END,
       CASE WHEN g %% 10 < 4 THEN 1 WHEN g %% 10 < 7 THEN 3 ELSE 2 END,
       CASE WHEN g %% 10 >= 4 THEN 'index/b' || g || '.pdf' END,
       CASE WHEN g %% 10 >= 7 THEN 'registre/' || md5(g::text) END,
       CASE WHEN g %% 10 = 9 THEN 'ocr' WHEN g %% 10 >= 7 THEN 'registre' END,
       CASE WHEN g %% 10 >= 7 THEN now() + CASE WHEN g %% 100 = 7 THEN interval '-1 minute'
                                                ELSE interval '5 minutes' END END,
       CASE WHEN g %% 10 = 0 THEN now() + interval '10 minutes' END,
       now() - interval '1 hour' * g / %(rows)s, now() - interval '1 minute'
  FROM generate_series(1, %(rows)s) g
"""


def fill_queue(dsn: str, finished: int, backlog: int) -> None:
    """Add `finished` done or error rows and a `backlog` of live rows, then VACUUM ANALYZE (as
    autovacuum would have by then)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if finished:
            conn.execute(FINISHED, {"rows": finished})
        if backlog:
            conn.execute(BACKLOG, {"rows": backlog})
        conn.execute("VACUUM ANALYZE extraction_queue")
