-- Who changed what: one row per state-changing request that succeeded. Runs, projects and
-- users are named by id without foreign keys, so that the trail outlives what it names.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    project_id INTEGER,
    run_id INTEGER,
    detail TEXT NOT NULL,
    request_id TEXT
);
CREATE INDEX audit_log_by_project ON audit_log (project_id, id);
