-- ddl_v4.sql - the DDL event triggers of version 4 (cachesvc/engine/check.c ddl_install_sql at
-- commit c021359), for ddl_rewrite.sh's upgrade part: no cachesvc.ddl_rel, a rename
-- recorded by its new name only.
BEGIN;
SET LOCAL client_min_messages = warning;
SET LOCAL lock_timeout = '10s';
SET LOCAL statement_timeout = '30s';
SELECT pg_advisory_xact_lock(hashtext('cachesvc ddl triggers 4'));
DROP EVENT TRIGGER IF EXISTS cachesvc_ddl_end;
DROP EVENT TRIGGER IF EXISTS cachesvc_ddl_drop;
CREATE SCHEMA IF NOT EXISTS cachesvc;
REVOKE ALL ON SCHEMA cachesvc FROM PUBLIC;
CREATE TABLE IF NOT EXISTS cachesvc.ddl_event (id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(), nsp text NOT NULL, rel text NOT NULL);
REVOKE ALL ON cachesvc.ddl_event FROM PUBLIC;
DELETE FROM cachesvc.ddl_event;
DROP FUNCTION IF EXISTS cachesvc.ddl_note(text, text, text);
CREATE OR REPLACE FUNCTION cachesvc.ddl_note(kind text, nsp text, rel text, relid oid)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $f$
DECLARE ids bigint[];
BEGIN
  IF kind IN ('index', 'sequence', 'trigger', 'event trigger', 'statistics object',
              'publication', 'publication relation', 'publication namespace',
              'subscription') OR nsp LIKE 'pg\_temp%' OR nsp LIKE 'pg\_toast\_temp%' THEN
    RETURN;
  END IF;
  IF kind IN ('table', 'table column', 'foreign table', 'materialized view', 'rule',
              'policy') AND nsp IS NOT NULL AND rel IS NOT NULL THEN
    WITH RECURSIVE up(oid) AS (
        SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = relid
        UNION SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.oid),
      ins AS (INSERT INTO cachesvc.ddl_event (nsp, rel)
        SELECT nsp, rel UNION ALL
        SELECT n.nspname, c.relname FROM up JOIN pg_class c ON c.oid = up.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace RETURNING id)
    SELECT array_agg(id) INTO ids FROM ins;
  ELSE
    WITH ins AS (INSERT INTO cachesvc.ddl_event (nsp, rel) VALUES ('*', '*') RETURNING id)
    SELECT array_agg(id) INTO ids FROM ins;
  END IF;
  DELETE FROM cachesvc.ddl_event WHERE id = ANY (ids);
END
$f$;
REVOKE ALL ON FUNCTION cachesvc.ddl_note(text, text, text, oid) FROM PUBLIC;
CREATE OR REPLACE FUNCTION cachesvc.ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT d.object_type, coalesce(n.nspname::text, d.schema_name) AS nsp,
                  c.relname::text AS rel, c.oid AS relid
           FROM pg_event_trigger_ddl_commands() d
           LEFT JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND w.oid = d.objid
           LEFT JOIN pg_policy y ON d.classid = 'pg_policy'::regclass AND y.oid = d.objid
           LEFT JOIN pg_class c ON c.oid = CASE WHEN d.classid = 'pg_class'::regclass
                THEN d.objid ELSE coalesce(w.ev_class, y.polrelid) END
           LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE d.command_tag NOT IN ('GRANT', 'REVOKE', 'COMMENT',
                                       'ALTER DEFAULT PRIVILEGES', 'SECURITY LABEL') LOOP
    PERFORM cachesvc.ddl_note(r.object_type, r.nsp, r.rel, r.relid);
  END LOOP;
END
$f$;
CREATE OR REPLACE FUNCTION cachesvc.ddl_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT CASE WHEN object_type IN ('table', 'foreign table', 'materialized view')
                  THEN 'dropped ' || object_type ELSE object_type END AS kind,
                  coalesce(address_names[1], schema_name) AS nsp,
                  CASE WHEN object_type IN ('rule', 'policy') THEN address_names[2]
                  ELSE object_name END AS rel
           FROM pg_event_trigger_dropped_objects()
           WHERE original AND object_type <> 'table column' LOOP
    PERFORM cachesvc.ddl_note(r.kind, r.nsp, r.rel, NULL);
  END LOOP;
END
$f$;
COMMENT ON FUNCTION cachesvc.ddl_end() IS 'cachesvc ddl triggers 4';
CREATE EVENT TRIGGER cachesvc_ddl_end ON ddl_command_end
  EXECUTE FUNCTION cachesvc.ddl_end();
CREATE EVENT TRIGGER cachesvc_ddl_drop ON sql_drop
  EXECUTE FUNCTION cachesvc.ddl_drop();
ALTER EVENT TRIGGER cachesvc_ddl_end ENABLE ALWAYS;
ALTER EVENT TRIGGER cachesvc_ddl_drop ENABLE ALWAYS;
COMMIT;
