-- The service's database role: it reads and appends to the audit log (`decisions`) and may never
-- update, delete or truncate it; `facesign-recovery db check-grants` checks that. Migrations run as
-- the tables' owner, a different role. Run again after a migration that adds a table.
GRANT USAGE ON SCHEMA public TO facesign_app;
GRANT SELECT ON service_settings, alembic_version TO facesign_app;
GRANT SELECT, INSERT, UPDATE ON users, recovery_attempts, reset_tokens, outgoing_mail TO facesign_app;
GRANT SELECT, INSERT, UPDATE ON auditor_tokens TO facesign_app;
GRANT SELECT, INSERT ON audit_access_log, audit_checkpoints TO facesign_app;
GRANT SELECT, INSERT ON recovery_lock_resets TO facesign_app;
GRANT SELECT, INSERT ON app_events TO facesign_app;
GRANT SELECT, INSERT, UPDATE ON app_event_deliveries TO facesign_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO facesign_app;
GRANT SELECT, INSERT ON decisions TO facesign_app;
