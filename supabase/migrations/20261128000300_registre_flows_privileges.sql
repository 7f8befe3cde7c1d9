-- registre-flows: only the service role may read the registry logins or move queue rows through
-- our functions. On Supabase, tables and functions in `public` are reachable with the anon key
-- by default, and `worker_accounts` holds passwords. Idempotent; roles that do not exist (a plain
-- PostgreSQL) are skipped.
ALTER TABLE worker_accounts ENABLE ROW LEVEL SECURITY;  -- no policy: only service_role passes

DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND p.proname LIKE 'registre\_%'
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM anon, authenticated', fn);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', fn);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON TABLE worker_accounts FROM anon, authenticated;
    END IF;
END;
$$;
