-- How often in a row the reconciler re-enqueued a file whose job was lost, with no progress in
-- between: a file that kills or stalls every worker that takes it fails after a few rounds instead
-- of being retried forever. Saved progress and re-attaching reset it.
ALTER TABLE knowledge_base_files ADD COLUMN requeues integer NOT NULL DEFAULT 0;
