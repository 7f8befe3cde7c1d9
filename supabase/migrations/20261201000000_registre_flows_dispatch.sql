-- registre-flows: what the dispatcher and the run hooks need. Additive and idempotent.

-- The next rows a claim would take, in claim order, without taking them (read-only): the
-- dispatcher creates one flow run per row. `version` changes with every write to the row, so a
-- document sent back to the queue gets a new run and a repeated dispatch does not.
CREATE OR REPLACE FUNCTION registre_claimable_v1(
    p_from_status integer,
    p_sources text[] DEFAULT NULL,
    p_limit integer DEFAULT 100
) RETURNS TABLE (id uuid, document_source text, document_number text, version text)
LANGUAGE sql STABLE SET search_path = public AS $$
    SELECT c.id, c.document_source, c.document_number,
           coalesce(c.updated_at, c.created_at)::text
      FROM extraction_queue c
     WHERE c.status_id = p_from_status
       AND (p_sources IS NULL OR c.document_source = ANY (p_sources))
       AND (c.retry_after IS NULL OR c.retry_after <= now())
     ORDER BY c.created_at, c.id
     LIMIT p_limit;
$$;


-- The rows held under a lease, for the reconciler: it asks Prefect about each owner run.
CREATE OR REPLACE FUNCTION registre_held_v1()
RETURNS TABLE (id uuid, lease_owner text, lease_stage text, lease_expires_at timestamptz)
LANGUAGE sql STABLE SET search_path = public AS $$
    SELECT q.id, q.lease_owner, q.lease_stage, q.lease_expires_at FROM extraction_queue q
     WHERE q.lease_expires_at IS NOT NULL;
$$;


-- An operator cancelled the run of this row in the Prefect UI: the row goes to the error status
-- with p_message and stays there. Only a row that run holds, or a row still waiting for the
-- stage with nobody holding it (the run was cancelled before it claimed), is changed.
CREATE OR REPLACE FUNCTION registre_cancel_v1(
    p_id uuid,
    p_owner text,
    p_stage text,
    p_message text,
    p_processing integer,
    p_waiting integer,
    p_error_status integer
) RETURNS SETOF extraction_queue
LANGUAGE sql SET search_path = public AS $$
    UPDATE extraction_queue q
       SET status_id = p_error_status,
           error_message = CASE WHEN p_stage = 'registre' THEN p_message ELSE q.error_message END,
           worker_id = CASE WHEN p_stage = 'registre' THEN NULL ELSE q.worker_id END,
           ocr_error = CASE WHEN p_stage = 'ocr' THEN p_message ELSE q.ocr_error END,
           ocr_last_error_at = CASE WHEN p_stage = 'ocr' THEN now() ELSE q.ocr_last_error_at END,
           ocr_worker_id = CASE WHEN p_stage = 'ocr' THEN NULL ELSE q.ocr_worker_id END,
           lease_owner = NULL,
           lease_stage = NULL,
           lease_expires_at = NULL,
           updated_at = now()
     WHERE q.id = p_id
       AND ((q.lease_owner = p_owner AND q.lease_stage = p_stage AND q.status_id = p_processing
             AND q.lease_expires_at IS NOT NULL)
         OR (q.status_id = p_waiting AND q.lease_expires_at IS NULL))
    RETURNING q.*;
$$;


-- A retry of a document's run (the Prefect UI's Retry): a row in error goes back to the stage's
-- waiting status with its attempts for that stage reset. Any other row is left as it is.
CREATE OR REPLACE FUNCTION registre_requeue_v1(
    p_id uuid,
    p_stage text,
    p_error_status integer,
    p_waiting integer
) RETURNS SETOF extraction_queue
LANGUAGE sql SET search_path = public AS $$
    UPDATE extraction_queue q
       SET status_id = p_waiting,
           attemtps = CASE WHEN p_stage = 'registre' THEN 0 ELSE q.attemtps END,
           ocr_attempts = CASE WHEN p_stage = 'ocr' THEN 0 ELSE q.ocr_attempts END,
           retry_after = NULL,
           lease_owner = NULL,
           lease_stage = NULL,
           lease_expires_at = NULL,
           updated_at = now()
     WHERE q.id = p_id AND q.status_id = p_error_status
       AND (p_stage = 'registre' OR q.supabase_path IS NOT NULL)
    RETURNING q.*;
$$;


-- The same privileges as every other registre_* function (20261128000300): service_role only.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public'
           AND p.proname IN ('registre_claimable_v1', 'registre_held_v1', 'registre_cancel_v1',
                             'registre_requeue_v1')
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM anon, authenticated', fn);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', fn);
        END IF;
    END LOOP;
END;
$$;
