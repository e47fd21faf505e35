-- A run's epochs (or steps) read without its other events: a run of 10,000 steps and 100
-- epochs had all 10,100 rows read, data and all, to find its epochs.
CREATE INDEX run_events_by_kind ON run_events (run_id, kind, seq);
