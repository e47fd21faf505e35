-- The fencing token of a run's current claim: raised by every claim, checked by every write
-- of the worker holding it, so that a worker that lost the run (and may since have claimed
-- it again under the same name) cannot write for an earlier claim.
ALTER TABLE runs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
