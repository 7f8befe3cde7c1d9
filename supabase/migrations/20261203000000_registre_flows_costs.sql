-- registre-flows: what each document cost, and the reuse of a fresh download instead of paying
-- the registry again. Additive and idempotent.
--
-- registry_cost_usd: the registry's fees for this row's downloads (0 when the PDF was reused).
-- gemini_usage: {"<model>": {"input_tokens", "output_tokens", "cost_usd"}} over every OCR attempt,
--   output tokens including thinking tokens (billed as output).
-- gemini_cost_usd: the sum of gemini_usage's cost_usd; gemini_cost_at: when it was last written.
-- reused_from: the earlier row whose stored PDF this row uses instead of a download of its own.
ALTER TABLE extraction_queue
    ADD COLUMN IF NOT EXISTS registry_cost_usd numeric,
    ADD COLUMN IF NOT EXISTS gemini_usage jsonb,
    ADD COLUMN IF NOT EXISTS gemini_cost_usd numeric,
    ADD COLUMN IF NOT EXISTS gemini_cost_at timestamptz,
    ADD COLUMN IF NOT EXISTS reused_from uuid;

CREATE INDEX IF NOT EXISTS idx_extraction_queue_downloaded_at
    ON extraction_queue (downloaded_at) WHERE downloaded_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_extraction_queue_gemini_cost_at
    ON extraction_queue (gemini_cost_at) WHERE gemini_cost_at IS NOT NULL;


-- The latest download of the same document (source, number, circonscription, cadastre,
-- désignation secondaire, acte type) made within p_max_age_hours, whose PDF row p_id can use
-- instead of visiting the registry. Only original downloads count (never a row that itself reused
-- one, so freshness is the PDF's age), and never a row in error (its PDF may be what failed).
-- Columns are compared as the workers read them: trimmed, the number without spaces, an empty
-- circonscription meaning p_default_circonscription.
CREATE OR REPLACE FUNCTION registre_fresh_download_v1(
    p_id uuid,
    p_source text,
    p_number text,
    p_circonscription text,
    p_default_circonscription text,
    p_cadastre text,
    p_designation text,
    p_acte_type text,
    p_max_age_hours double precision,
    p_error_status integer
) RETURNS TABLE (id uuid, supabase_path text, downloaded_at timestamptz)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT c.id, c.supabase_path, c.downloaded_at
      FROM extraction_queue c
     WHERE c.downloaded_at >= now() - p_max_age_hours * interval '1 hour'
       AND c.id <> p_id
       AND c.reused_from IS NULL
       AND nullif(btrim(c.supabase_path), '') IS NOT NULL
       AND c.status_id <> p_error_status
       AND c.document_source = p_source
       AND regexp_replace(coalesce(nullif(btrim(c.document_number_normalized), ''),
                                   c.document_number), '\s', '', 'g') = p_number
       AND coalesce(nullif(btrim(c.circonscription_fonciere), ''), p_default_circonscription)
           = p_circonscription
       AND nullif(btrim(c.cadastre), '') IS NOT DISTINCT FROM p_cadastre
       AND nullif(btrim(c.designation_secondaire), '') IS NOT DISTINCT FROM p_designation
       AND nullif(btrim(c.acte_type), '') IS NOT DISTINCT FROM p_acte_type
     ORDER BY c.downloaded_at DESC
     LIMIT 1;
$$;


-- One UTC day's spending: rows downloaded that day (registry fees; reused ones cost nothing)
-- and rows whose Gemini spending was last written that day, with the tokens summed per model.
CREATE OR REPLACE FUNCTION registre_costs_v1(p_day date)
RETURNS TABLE (
    documents bigint,
    downloads bigint,
    reused bigint,
    registry_usd numeric,
    gemini_usd numeric,
    gemini_usage jsonb
)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    WITH bounds AS (
        SELECT p_day::timestamp AT TIME ZONE 'UTC' AS from_at,
               (p_day + 1)::timestamp AT TIME ZONE 'UTC' AS to_at
    ), fetched AS (
        SELECT q.id, q.registry_cost_usd, q.reused_from
          FROM extraction_queue q, bounds b
         WHERE q.downloaded_at >= b.from_at AND q.downloaded_at < b.to_at
    ), read AS (
        SELECT q.id, q.gemini_usage, q.gemini_cost_usd
          FROM extraction_queue q, bounds b
         WHERE q.gemini_cost_at >= b.from_at AND q.gemini_cost_at < b.to_at
    ), models AS (
        SELECT m.key AS model,
               jsonb_build_object(
                   'input_tokens', sum((m.value ->> 'input_tokens')::bigint),
                   'output_tokens', sum((m.value ->> 'output_tokens')::bigint),
                   'cost_usd', sum((m.value ->> 'cost_usd')::numeric)) AS totals
          FROM read r, jsonb_each(r.gemini_usage) m
         WHERE jsonb_typeof(r.gemini_usage) = 'object'
         GROUP BY m.key
    )
    SELECT (SELECT count(*) FROM (SELECT f.id FROM fetched f UNION SELECT r.id FROM read r) d),
           (SELECT count(*) FROM fetched f WHERE f.reused_from IS NULL),
           (SELECT count(*) FROM fetched f WHERE f.reused_from IS NOT NULL),
           (SELECT coalesce(sum(f.registry_cost_usd), 0) FROM fetched f),
           (SELECT coalesce(sum(r.gemini_cost_usd), 0) FROM read r),
           (SELECT coalesce(jsonb_object_agg(m.model, m.totals), '{}'::jsonb) FROM models m);
$$;


-- The service role only and a fixed search_path, for every registre_* function: the rule of
-- 20261202000000 as a procedure, so each later migration applies it in one call. Its name is
-- not registre_*: that migration's own loop, applied again, handles functions only.
CREATE OR REPLACE PROCEDURE secure_registre_functions()
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND p.proname LIKE 'registre\_%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = public, pg_temp', fn);
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

REVOKE EXECUTE ON PROCEDURE secure_registre_functions() FROM PUBLIC;
CALL secure_registre_functions();
