-- The run queue (workers claim runs and prove they are alive), tags and notes, columns the
-- run list filters and sorts on, and one ordered event log per run replacing epoch_metrics.
ALTER TABLE runs ADD COLUMN method TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN dataset TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN epochs_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN best_accuracy REAL;
ALTER TABLE runs ADD COLUMN worker TEXT;
ALTER TABLE runs ADD COLUMN heartbeat_ms INTEGER;
ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;

UPDATE runs SET
    method = json_extract(config, '$.method.kind'),
    dataset = json_extract(config, '$.dataset.kind'),
    updated_ms = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER);

CREATE TABLE run_tags (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE INDEX run_tags_by_tag ON run_tags (tag);

-- data: the JSON of balancelab_shared::RunEvent; kind: its type.
CREATE TABLE run_events (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

INSERT INTO run_events (run_id, seq, kind, data)
    SELECT run_id, epoch, 'epoch', json_patch(metrics, json_object('type', 'epoch'))
    FROM epoch_metrics;
UPDATE runs SET
    last_seq = COALESCE((SELECT MAX(epoch) FROM epoch_metrics WHERE run_id = runs.id), 0),
    epochs_done = COALESCE((SELECT MAX(epoch) FROM epoch_metrics WHERE run_id = runs.id), 0);
DROP TABLE epoch_metrics;

CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_update ON runs (updated_ms);
