-- registre-flows: an operator puts failed documents back into the queue (`registre retry`).
-- Additive and idempotent.

-- Rows in p_error_status that nobody holds go back to the stage that failed, attempts reset:
-- an OCR failure with its PDF stored goes back to p_ready_for_ocr (not downloaded again); any
-- other failure, an OCR failure without a stored PDF included, goes back to p_waiting.
-- Filters (NULL: any): p_ids; p_since, rows that went to error at or after it; p_stage,
-- 'registre' or 'ocr' as above; p_message, only rows whose error contains it and p_exclude, only
-- rows whose error does not (both case-insensitive substrings, not patterns).
-- A row whose lease has not expired is left alone, whatever its status: a run believes it holds
-- it. Rows another transaction is writing are skipped, so a concurrent retry or run cannot make a
-- row be retried twice. With p_dry_run nothing changes and the rows that would be are returned.
CREATE OR REPLACE FUNCTION registre_retry_v1(
    p_error_status integer,
    p_waiting integer,
    p_ready_for_ocr integer,
    p_ids uuid[] DEFAULT NULL,
    p_since timestamptz DEFAULT NULL,
    p_stage text DEFAULT NULL,
    p_message text DEFAULT NULL,
    p_exclude text DEFAULT NULL,
    p_dry_run boolean DEFAULT false
) RETURNS TABLE (
    id uuid,
    document_source text,
    document_number text,
    stage text,
    status_id integer,
    message text,
    failed_at timestamptz
)
LANGUAGE sql SET search_path = public, pg_temp AS $$
    WITH failed AS (
        SELECT f.id, f.document_source, f.document_number, f.updated_at AS failed_at,
               f.ocr_error IS NOT NULL AND nullif(btrim(f.supabase_path), '') IS NOT NULL AS ocr,
               f.error_message, f.ocr_error
          FROM extraction_queue f
         WHERE f.status_id = p_error_status
           AND (f.lease_expires_at IS NULL OR f.lease_expires_at < now())
           AND (p_ids IS NULL OR f.id = ANY (p_ids))
           AND (p_since IS NULL OR f.updated_at >= p_since)
           FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT x.id, x.document_source, x.document_number, x.failed_at,
               CASE WHEN x.ocr THEN 'ocr' ELSE 'registre' END AS stage,
               CASE WHEN x.ocr THEN p_ready_for_ocr ELSE p_waiting END AS to_status,
               CASE WHEN x.ocr THEN x.ocr_error
                    ELSE coalesce(x.error_message, x.ocr_error) END AS message
          FROM failed x
    ), picked AS (
        SELECT c.* FROM chosen c
         WHERE (p_stage IS NULL OR c.stage = p_stage)
           AND (p_message IS NULL
                OR strpos(lower(coalesce(c.message, '')), lower(p_message)) > 0)
           AND (p_exclude IS NULL
                OR strpos(lower(coalesce(c.message, '')), lower(p_exclude)) = 0)
    ), retried AS (
        UPDATE extraction_queue q
           SET status_id = p.to_status,
               attemtps = CASE WHEN p.stage = 'ocr' THEN q.attemtps ELSE 0 END,
               ocr_attempts = 0,
               error_message = CASE WHEN p.stage = 'ocr' THEN q.error_message ELSE NULL END,
               worker_id = CASE WHEN p.stage = 'ocr' THEN q.worker_id ELSE NULL END,
               ocr_error = NULL,
               ocr_worker_id = NULL,
               lease_owner = NULL,
               lease_stage = NULL,
               lease_expires_at = NULL,
               retry_after = NULL,
               updated_at = now()
          FROM picked p
         WHERE q.id = p.id AND NOT p_dry_run
        RETURNING q.id, q.status_id
    )
    SELECT p.id, p.document_source, p.document_number, p.stage,
           coalesce(r.status_id, p.to_status), p.message, p.failed_at
      FROM picked p LEFT JOIN retried r ON r.id = p.id
     ORDER BY p.failed_at, p.id;
$$;


-- The same privileges and search_path as every other registre_* function.
CALL secure_registre_functions();
