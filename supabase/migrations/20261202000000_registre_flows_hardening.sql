-- registre-flows: the tables and functions the workers use are reachable by the service role only.
-- RLS on for the queue and its status names as for worker_accounts (policies a database already
-- has for its own app's roles are kept: ENABLE changes no policy). Every function of ours runs
-- with a fixed search_path, so that no schema of a caller's can shadow the tables it writes.
-- Idempotent; roles that do not exist (a plain PostgreSQL) are skipped.
ALTER TABLE extraction_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE extraction_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE worker_accounts ENABLE ROW LEVEL SECURITY;

DO $$
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
