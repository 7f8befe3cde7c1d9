-- registre-flows: what the control plane reads on every pass (the dispatcher every 2 s, the run
-- hooks, the rebalance's reconciler) reads only the rows that can still change, through indexes
-- that hold only those rows, so its cost follows the backlog and not the table's history; and
-- `registre status` reads finished rows for a bounded period. Additive and idempotent: the v1
-- functions stay (workers of the previous release call them during a rolling upgrade).
--
-- Live statuses, written literally: 1, 2, 3 and 6 are live under both mappings of
-- tasks/statuses.py (waiting, downloading or OCR in progress, ready for OCR, NotaFlow's OCR in
-- progress); 4 and 5 are the finished ones (done and error, in one order or the other). The
-- planner uses a partial index only when it can prove the query's WHERE clause implies the
-- index's predicate, and it cannot from a function parameter (a SQL function with SET search_path
-- is never inlined, so its statements are planned generically, `status_id = $1`). So the
-- functions below repeat `status_id IN (1, 2, 3, 6)` word for word beside their parameters.
--
-- On a large live table, build the indexes without locking writes first, by hand, outside any
-- transaction (CREATE INDEX CONCURRENTLY cannot run in one, and `supabase db push` runs each
-- migration file in a transaction, supabase/cli#2898; `registre db migrate` sends each file as
-- one multi-statement query, which PostgreSQL also runs as one transaction). In psql, one
-- statement at a time:
--
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_extraction_queue_live
--       ON extraction_queue (status_id, created_at, id) INCLUDE (document_source, retry_after)
--    WHERE status_id IN (1, 2, 3, 6);
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_extraction_queue_live_lease
--       ON extraction_queue (status_id, lease_expires_at) INCLUDE (id, lease_owner, lease_stage)
--    WHERE status_id IN (1, 2, 3, 6) AND lease_expires_at IS NOT NULL;
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_extraction_queue_finished
--       ON extraction_queue (updated_at, status_id, document_source)
--    WHERE status_id NOT IN (1, 2, 3, 6);
--
-- then check none was left invalid by a failed build (`SELECT indexrelid::regclass FROM pg_index
-- WHERE NOT indisvalid`; drop such an index with DROP INDEX CONCURRENTLY and build it again),
-- then apply this migration: its IF NOT EXISTS finds the indexes and skips them.

-- The live rows in claim order: claimable, and the dispatcher's counts (by index only, with the
-- columns they group and filter on).
CREATE INDEX IF NOT EXISTS idx_extraction_queue_live
    ON extraction_queue (status_id, created_at, id) INCLUDE (document_source, retry_after)
 WHERE status_id IN (1, 2, 3, 6);
-- The live rows under a lease: the reconciler's held rows (by index only) and expired leases.
-- It replaces idx_extraction_queue_lease for v2, which v1 still uses: a row another system
-- finished may keep its lease_expires_at, and status_id first lets the planner prefer this one.
CREATE INDEX IF NOT EXISTS idx_extraction_queue_live_lease
    ON extraction_queue (status_id, lease_expires_at) INCLUDE (id, lease_owner, lease_stage)
 WHERE status_id IN (1, 2, 3, 6) AND lease_expires_at IS NOT NULL;
-- The finished rows by when they finished: `registre status` counts a bounded period and shows
-- the last errors, by index only.
CREATE INDEX IF NOT EXISTS idx_extraction_queue_finished
    ON extraction_queue (updated_at, status_id, document_source)
 WHERE status_id NOT IN (1, 2, 3, 6);


-- registre_claimable_v1 over the live rows only.
CREATE OR REPLACE FUNCTION registre_claimable_v2(
    p_from_status integer,
    p_sources text[] DEFAULT NULL,
    p_limit integer DEFAULT 100
) RETURNS TABLE (id uuid, document_source text, document_number text, version text)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT c.id, c.document_source, c.document_number,
           coalesce(c.updated_at, c.created_at)::text
      FROM extraction_queue c
     WHERE c.status_id IN (1, 2, 3, 6)  -- idx_extraction_queue_live (see the top)
       AND c.status_id = p_from_status
       AND (p_sources IS NULL OR c.document_source = ANY (p_sources))
       AND (c.retry_after IS NULL OR c.retry_after <= now())
     ORDER BY c.created_at, c.id
     LIMIT p_limit;
$$;


-- Live rows per (status, source), for the dispatcher and the operators; with p_claimable, only
-- the rows a claim would take now (not held back by a retry delay). Finished rows are counted by
-- registre_finished_counts_v1, for a bounded period.
CREATE OR REPLACE FUNCTION registre_queue_counts_v2(p_claimable boolean DEFAULT false)
RETURNS TABLE (status_id integer, document_source text, jobs bigint)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT q.status_id, q.document_source, count(*) FROM extraction_queue q
     WHERE q.status_id IN (1, 2, 3, 6)  -- idx_extraction_queue_live (see the top)
       AND (NOT p_claimable OR q.retry_after IS NULL OR q.retry_after <= now())
     GROUP BY q.status_id, q.document_source;
$$;


-- registre_held_v1 over the live rows only.
CREATE OR REPLACE FUNCTION registre_held_v2()
RETURNS TABLE (id uuid, lease_owner text, lease_stage text, lease_expires_at timestamptz)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT q.id, q.lease_owner, q.lease_stage, q.lease_expires_at FROM extraction_queue q
     WHERE q.status_id IN (1, 2, 3, 6)  -- idx_extraction_queue_live_lease (see the top)
       AND q.lease_expires_at IS NOT NULL;
$$;


-- registre_recover_expired_v1 over the live rows under a lease only: the rows it takes back are
-- in a processing status, live by definition.
CREATE OR REPLACE FUNCTION registre_recover_expired_v2(
    p_registre_processing integer,
    p_ocr_processing integer,
    p_waiting integer,
    p_ready_for_ocr integer,
    p_error_status integer
) RETURNS SETOF extraction_queue
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY
    WITH expired AS (
        SELECT e.id, e.lease_stage = 'ocr' AS ocr,
               CASE WHEN e.lease_stage = 'ocr'
                    THEN coalesce(e.ocr_attempts, 0) + 1 >= coalesce(e.ocr_max_attempts, 3)
                    ELSE coalesce(e.attemtps, 0) + 1 >= coalesce(e.max_attempts, 3) END AS exhausted,
               'lease expired: the worker ' || e.lease_owner
                   || ' stopped before finishing (taken back at ' || now()::text || ')' AS message
          FROM extraction_queue e
         WHERE e.status_id IN (1, 2, 3, 6)  -- idx_extraction_queue_live_lease (see the top)
           AND e.lease_expires_at IS NOT NULL
           -- `< now()` as a filter, not an index condition: as a condition it would make v1's
           -- idx_extraction_queue_lease look cheaper, an index whose rows are not provably live.
           -- The rows under a lease are the runs in progress: a few, all read.
           AND (e.lease_expires_at < now()) IS TRUE
           AND ((e.lease_stage = 'registre' AND e.status_id = p_registre_processing)
             OR (e.lease_stage = 'ocr' AND e.status_id = p_ocr_processing))
           FOR UPDATE SKIP LOCKED)
    UPDATE extraction_queue q
       SET status_id = CASE WHEN x.exhausted THEN p_error_status
                            WHEN x.ocr THEN p_ready_for_ocr ELSE p_waiting END,
           attemtps = CASE WHEN x.ocr THEN q.attemtps ELSE coalesce(q.attemtps, 0) + 1 END,
           error_message = CASE WHEN x.ocr THEN q.error_message ELSE x.message END,
           worker_id = CASE WHEN x.ocr THEN q.worker_id ELSE NULL END,
           ocr_attempts = CASE WHEN x.ocr THEN coalesce(q.ocr_attempts, 0) + 1
                               ELSE q.ocr_attempts END,
           ocr_error = CASE WHEN x.ocr THEN x.message ELSE q.ocr_error END,
           ocr_last_error_at = CASE WHEN x.ocr THEN now() ELSE q.ocr_last_error_at END,
           ocr_worker_id = CASE WHEN x.ocr THEN NULL ELSE q.ocr_worker_id END,
           lease_owner = NULL,
           lease_stage = NULL,
           lease_expires_at = NULL,
           updated_at = now()
      FROM expired x
     WHERE q.id = x.id
    RETURNING q.*;
END;
$$;


-- Finished rows (any status but the live ones) per (status, source) whose last change was at or
-- after p_since: what `registre status` shows for today or the last days. plpgsql, so that the
-- query is planned with p_since's value: planned generically (a third of the table), today's
-- few thousand rows were read by parallel workers that take 50 ms to start.
CREATE OR REPLACE FUNCTION registre_finished_counts_v1(p_since timestamptz)
RETURNS TABLE (status_id integer, document_source text, jobs bigint)
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT q.status_id, q.document_source, count(*) FROM extraction_queue q
     WHERE q.status_id NOT IN (1, 2, 3, 6)  -- idx_extraction_queue_finished (see the top)
       AND q.updated_at >= p_since
     GROUP BY q.status_id, q.document_source;
END;
$$;


-- How many rows extraction_queue holds, as the planner's statistics last estimated it (ANALYZE,
-- autovacuum): instant at any size, and an estimate. NULL before the table was ever analysed.
CREATE OR REPLACE FUNCTION registre_queue_estimate_v1()
RETURNS bigint
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END
      FROM pg_class c
     WHERE c.oid = 'public.extraction_queue'::regclass;
$$;


CALL secure_registre_functions();
