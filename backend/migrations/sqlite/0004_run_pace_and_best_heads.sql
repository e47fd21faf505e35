-- What the run list shows without reading the event log: the wall time of the last epoch
-- (for an ETA) and each unimodal head's accuracy at the best epoch (JSON array).
ALTER TABLE runs ADD COLUMN elapsed_seconds REAL;
ALTER TABLE runs ADD COLUMN best_unimodal TEXT;
