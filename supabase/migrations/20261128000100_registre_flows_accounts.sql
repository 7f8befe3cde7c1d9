-- registre-flows: registry accounts checked out one run at a time.
-- Additive and idempotent, like the queue migration: adds two columns and three functions.

ALTER TABLE worker_accounts
    ADD COLUMN IF NOT EXISTS checkout_owner text,
    ADD COLUMN IF NOT EXISTS checkout_expires_at timestamptz;


-- Check out the least recently used active account under the failure limit that no other run
-- holds (or whose holder's lease has expired), for p_lease_seconds. SKIP LOCKED lets concurrent
-- runs pass each other instead of all waiting on, then taking, the same row.
-- p_exclude lists accounts this run already found refused. p_prefer lists accounts that have a
-- stored browser session: taking one of them first saves a login on the registry.
CREATE OR REPLACE FUNCTION registre_checkout_account_v1(
    p_owner text,
    p_lease_seconds integer,
    p_max_failures integer DEFAULT 3,
    p_exclude uuid[] DEFAULT NULL,
    p_prefer uuid[] DEFAULT NULL
) RETURNS SETOF worker_accounts
LANGUAGE sql AS $$
    UPDATE worker_accounts a
       SET last_used = now(),
           checkout_owner = p_owner,
           checkout_expires_at = now() + make_interval(secs => p_lease_seconds),
           updated_at = now()
     WHERE a.id = (
            SELECT c.id FROM worker_accounts c
             WHERE c.is_active IS TRUE
               AND coalesce(c.failure_count, 0) < p_max_failures
               AND (c.checkout_expires_at IS NULL OR c.checkout_expires_at <= now()
                    OR c.checkout_owner = p_owner)
               AND (p_exclude IS NULL OR NOT (c.id = ANY (p_exclude)))
             ORDER BY (p_prefer IS NOT NULL AND c.id = ANY (p_prefer)) DESC,
                      c.last_used ASC NULLS FIRST, c.id
             LIMIT 1
               FOR UPDATE SKIP LOCKED)
    RETURNING a.*;
$$;


-- Give the account back (only if p_owner still holds it).
CREATE OR REPLACE FUNCTION registre_release_account_v1(p_id uuid, p_owner text)
RETURNS boolean
LANGUAGE sql AS $$
    WITH released AS (
        UPDATE worker_accounts
           SET checkout_owner = NULL, checkout_expires_at = NULL, updated_at = now()
         WHERE id = p_id AND checkout_owner = p_owner
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM released);
$$;


-- Record a login attempt: refused credentials count one failure, a success resets the count.
-- Returns the new failure_count.
CREATE OR REPLACE FUNCTION registre_record_login_v1(p_id uuid, p_success boolean)
RETURNS integer
LANGUAGE sql AS $$
    UPDATE worker_accounts
       SET failure_count = CASE WHEN p_success THEN 0 ELSE coalesce(failure_count, 0) + 1 END,
           updated_at = now()
     WHERE id = p_id
    RETURNING failure_count;
$$;
