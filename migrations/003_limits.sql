-- Rate limits and storage quotas. NULL means "inherit": a key inherits its project's limits,
-- a project inherits the server defaults (CAIRN_DEFAULT_RPM, _TPM, _STORAGE_QUOTA_BYTES).
ALTER TABLE projects ADD COLUMN rpm_limit integer;
ALTER TABLE projects ADD COLUMN tpm_limit integer;
ALTER TABLE projects ADD COLUMN storage_quota_bytes bigint;
ALTER TABLE api_keys ADD COLUMN rpm_limit integer;
ALTER TABLE api_keys ADD COLUMN tpm_limit integer;
