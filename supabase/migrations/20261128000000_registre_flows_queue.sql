-- registre-flows: the queue schema and the functions the workers call.
-- Additive and idempotent: on an existing NotaFlow database it only adds what is missing;
-- it never drops or renames anything. Apply with `supabase db push` or `registre db migrate`.

CREATE TABLE IF NOT EXISTS extraction_status (
    id integer PRIMARY KEY,
    name text NOT NULL
);
-- A fresh database gets the seed system's names; an existing one keeps its own.
INSERT INTO extraction_status (id, name) VALUES
    (1, 'En attente'), (2, 'En traitement'), (3, 'Complété'), (4, 'OCR complété'), (5, 'Erreur')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS extraction_queue (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every column the system reads or writes (DOMAIN.md §1.1), added one by one so that a database
-- missing some of them (prod lacked migration 004/005) is brought level. `attemtps` is misspelled
-- in the real database and stays so.
ALTER TABLE extraction_queue
    ADD COLUMN IF NOT EXISTS document_source text,
    ADD COLUMN IF NOT EXISTS document_number text,
    ADD COLUMN IF NOT EXISTS document_number_normalized text,
    ADD COLUMN IF NOT EXISTS circonscription_fonciere text,
    ADD COLUMN IF NOT EXISTS cadastre text,
    ADD COLUMN IF NOT EXISTS designation_secondaire text,
    ADD COLUMN IF NOT EXISTS acte_type text,
    ADD COLUMN IF NOT EXISTS status_id integer NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS worker_id text,
    ADD COLUMN IF NOT EXISTS attemtps integer DEFAULT 0,
    ADD COLUMN IF NOT EXISTS max_attempts integer DEFAULT 3,
    ADD COLUMN IF NOT EXISTS retry_count integer DEFAULT 0,
    ADD COLUMN IF NOT EXISTS supabase_path text,
    ADD COLUMN IF NOT EXISTS error_message text,
    ADD COLUMN IF NOT EXISTS file_content text,
    ADD COLUMN IF NOT EXISTS boosted_file_content text,
    ADD COLUMN IF NOT EXISTS searchable_file_content text,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT now(),
    ADD COLUMN IF NOT EXISTS processing_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS ocr_worker_id text,
    ADD COLUMN IF NOT EXISTS ocr_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS ocr_completed_at timestamptz,
    ADD COLUMN IF NOT EXISTS ocr_attempts integer DEFAULT 0,
    ADD COLUMN IF NOT EXISTS ocr_max_attempts integer DEFAULT 3,
    ADD COLUMN IF NOT EXISTS ocr_error text,
    ADD COLUMN IF NOT EXISTS ocr_last_error_at timestamptz,
    -- added by registre-flows: who holds the row, until when, in which stage
    ADD COLUMN IF NOT EXISTS lease_owner text,
    ADD COLUMN IF NOT EXISTS lease_stage text,
    ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS retry_after timestamptz,
    ADD COLUMN IF NOT EXISTS downloaded_at timestamptz;

CREATE INDEX IF NOT EXISTS idx_extraction_queue_claimable
    ON extraction_queue (status_id, created_at);
CREATE INDEX IF NOT EXISTS idx_extraction_queue_lease
    ON extraction_queue (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_extraction_queue_lease_owner
    ON extraction_queue (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE IF NOT EXISTS worker_accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username text NOT NULL,
    password text NOT NULL,
    is_active boolean DEFAULT true,
    last_used timestamptz,
    failure_count integer DEFAULT 0,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
-- an older table may lack some of the columns the account checkout uses
ALTER TABLE worker_accounts
    ADD COLUMN IF NOT EXISTS is_active boolean DEFAULT true,
    ADD COLUMN IF NOT EXISTS last_used timestamptz,
    ADD COLUMN IF NOT EXISTS failure_count integer DEFAULT 0,
    ADD COLUMN IF NOT EXISTS created_at timestamptz DEFAULT now(),
    ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT now();
CREATE INDEX IF NOT EXISTS idx_worker_accounts_active ON worker_accounts (is_active, failure_count);


-- Claim up to p_limit rows waiting in p_from_status (FIFO by created_at), atomically.
-- p_stage is 'registre' or 'ocr'; p_sources NULL means any document_source; p_id claims that row only.
-- Asking again with the same owner first returns the rows that owner already holds, so a claim
-- whose answer was lost on the network is found again instead of leaking until its lease expires.
CREATE OR REPLACE FUNCTION registre_claim_v1(
    p_stage text,
    p_owner text,
    p_limit integer,
    p_lease_seconds integer,
    p_from_status integer,
    p_to_status integer,
    p_sources text[] DEFAULT NULL,
    p_id uuid DEFAULT NULL
) RETURNS SETOF extraction_queue
LANGUAGE plpgsql AS $$
DECLARE
    held integer;
BEGIN
    RETURN QUERY
    UPDATE extraction_queue q
       SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
     WHERE q.lease_owner = p_owner AND q.lease_stage = p_stage
       AND q.status_id = p_to_status AND q.lease_expires_at IS NOT NULL
       AND (p_id IS NULL OR q.id = p_id)
    RETURNING q.*;
    GET DIAGNOSTICS held = ROW_COUNT;
    IF held >= p_limit THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE extraction_queue q
       SET status_id = p_to_status,
           lease_owner = p_owner,
           lease_stage = p_stage,
           lease_expires_at = now() + make_interval(secs => p_lease_seconds),
           retry_after = NULL,
           updated_at = now(),
           worker_id = CASE WHEN p_stage = 'registre' THEN p_owner ELSE q.worker_id END,
           processing_started_at = CASE WHEN p_stage = 'registre' THEN now()
                                        ELSE q.processing_started_at END,
           ocr_worker_id = CASE WHEN p_stage = 'ocr' THEN p_owner ELSE q.ocr_worker_id END,
           ocr_started_at = CASE WHEN p_stage = 'ocr' THEN now() ELSE q.ocr_started_at END
     WHERE q.id IN (
            SELECT c.id FROM extraction_queue c
             WHERE c.status_id = p_from_status
               AND (p_sources IS NULL OR c.document_source = ANY (p_sources))
               AND (c.retry_after IS NULL OR c.retry_after <= now())
               AND (p_id IS NULL OR c.id = p_id)
             ORDER BY c.created_at, c.id
             LIMIT p_limit - held
               FOR UPDATE SKIP LOCKED)
    RETURNING q.*;
END;
$$;


-- Extend the lease of a row the owner still holds. False means the lease was lost.
CREATE OR REPLACE FUNCTION registre_renew_lease_v1(
    p_id uuid, p_owner text, p_lease_seconds integer
) RETURNS boolean
LANGUAGE sql AS $$
    WITH renewed AS (
        UPDATE extraction_queue
           SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
         WHERE id = p_id AND lease_owner = p_owner AND lease_expires_at IS NOT NULL
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM renewed);
$$;


-- Record a failure of the owner's stage: one more attempt, then back to p_retry_status (after
-- p_retry_delay_seconds) or, when permanent or out of attempts, to p_error_status.
-- Only a row the owner still holds in p_processing changes, so no error path can overwrite a
-- terminal status. A repeated call (lost answer) returns the row as the first call left it.
CREATE OR REPLACE FUNCTION registre_fail_v1(
    p_id uuid,
    p_owner text,
    p_stage text,
    p_message text,
    p_permanent boolean,
    p_processing integer,
    p_retry_status integer,
    p_error_status integer,
    p_retry_delay_seconds integer DEFAULT 0
) RETURNS SETOF extraction_queue
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    UPDATE extraction_queue q
       SET status_id = CASE
               WHEN p_permanent THEN p_error_status
               WHEN p_stage = 'registre'
                    AND coalesce(q.attemtps, 0) + 1 >= coalesce(q.max_attempts, 3) THEN p_error_status
               WHEN p_stage = 'ocr'
                    AND coalesce(q.ocr_attempts, 0) + 1 >= coalesce(q.ocr_max_attempts, 3)
                    THEN p_error_status
               ELSE p_retry_status END,
           attemtps = CASE WHEN p_stage = 'registre' THEN coalesce(q.attemtps, 0) + 1
                           ELSE q.attemtps END,
           error_message = CASE WHEN p_stage = 'registre' THEN p_message ELSE q.error_message END,
           worker_id = CASE WHEN p_stage = 'registre' THEN NULL ELSE q.worker_id END,
           ocr_attempts = CASE WHEN p_stage = 'ocr' THEN coalesce(q.ocr_attempts, 0) + 1
                               ELSE q.ocr_attempts END,
           ocr_error = CASE WHEN p_stage = 'ocr' THEN p_message ELSE q.ocr_error END,
           ocr_last_error_at = CASE WHEN p_stage = 'ocr' THEN now() ELSE q.ocr_last_error_at END,
           ocr_worker_id = CASE WHEN p_stage = 'ocr' THEN NULL ELSE q.ocr_worker_id END,
           lease_expires_at = NULL,
           retry_after = now() + make_interval(secs => p_retry_delay_seconds),
           updated_at = now()
     WHERE q.id = p_id AND q.lease_owner = p_owner AND q.lease_stage = p_stage
       AND q.status_id = p_processing AND q.lease_expires_at IS NOT NULL
    RETURNING q.*;
    IF NOT FOUND THEN
        RETURN QUERY
        SELECT * FROM extraction_queue q
         WHERE q.id = p_id AND q.lease_owner = p_owner AND q.lease_stage = p_stage
           AND q.lease_expires_at IS NULL;
    END IF;
END;
$$;


-- Take back every row whose lease has expired (its worker died or hung): one attempt is counted,
-- then the row goes back to its stage's waiting status, or to the error status when out of attempts.
-- Rows claimed by other systems (no lease) are left alone.
CREATE OR REPLACE FUNCTION registre_recover_expired_v1(
    p_registre_processing integer,
    p_ocr_processing integer,
    p_waiting integer,
    p_ready_for_ocr integer,
    p_error_status integer
) RETURNS SETOF extraction_queue
LANGUAGE plpgsql AS $$
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
         WHERE e.lease_expires_at < now()
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


-- Rows per (status, source), for the dispatcher and the operators; with p_claimable, only the
-- rows a claim would take now (not held back by a retry delay).
CREATE OR REPLACE FUNCTION registre_queue_counts_v1(p_claimable boolean DEFAULT false)
RETURNS TABLE (status_id integer, document_source text, jobs bigint)
LANGUAGE sql STABLE AS $$
    SELECT q.status_id, q.document_source, count(*) FROM extraction_queue q
     WHERE NOT p_claimable OR q.retry_after IS NULL OR q.retry_after <= now()
     GROUP BY q.status_id, q.document_source;
$$;


-- Give a held row back to its stage's waiting status without counting an attempt: the failure
-- was not the document's (a service down, no free account, a configuration mistake).
CREATE OR REPLACE FUNCTION registre_release_v1(
    p_id uuid,
    p_owner text,
    p_stage text,
    p_message text,
    p_processing integer,
    p_retry_status integer,
    p_retry_delay_seconds integer DEFAULT 0
) RETURNS SETOF extraction_queue
LANGUAGE sql AS $$
    UPDATE extraction_queue q
       SET status_id = p_retry_status,
           error_message = CASE WHEN p_stage = 'registre' THEN p_message ELSE q.error_message END,
           worker_id = CASE WHEN p_stage = 'registre' THEN NULL ELSE q.worker_id END,
           ocr_error = CASE WHEN p_stage = 'ocr' THEN p_message ELSE q.ocr_error END,
           ocr_last_error_at = CASE WHEN p_stage = 'ocr' THEN now() ELSE q.ocr_last_error_at END,
           ocr_worker_id = CASE WHEN p_stage = 'ocr' THEN NULL ELSE q.ocr_worker_id END,
           lease_expires_at = NULL,
           retry_after = now() + make_interval(secs => p_retry_delay_seconds),
           updated_at = now()
     WHERE q.id = p_id AND q.lease_owner = p_owner AND q.lease_stage = p_stage
       AND q.status_id = p_processing AND q.lease_expires_at IS NOT NULL
    RETURNING q.*;
$$;
