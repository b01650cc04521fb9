-- expires_after (OpenAI's): vector stores expire `days` after their last use (anchor last_active_at),
-- files `seconds` after upload (anchor created_at). The sweeper reclaims their storage; the lease
-- columns let several processes sweep without doing the same object twice, and a process that dies
-- mid-sweep leaves a lease that runs out, so the next sweep (after a restart too) finishes the job.
ALTER TABLE knowledge_bases ADD COLUMN expires_after_days integer;
ALTER TABLE knowledge_bases ADD COLUMN reclaimed_at timestamptz;
ALTER TABLE knowledge_bases ADD COLUMN sweep_lease_until timestamptz;
CREATE INDEX knowledge_bases_expiring_idx ON knowledge_bases (last_active_at)
  WHERE expires_after_days IS NOT NULL AND reclaimed_at IS NULL;

ALTER TABLE files ADD COLUMN expires_at timestamptz;
ALTER TABLE files ADD COLUMN sweep_lease_until timestamptz;
CREATE INDEX files_expires_at_idx ON files (expires_at) WHERE expires_at IS NOT NULL;
