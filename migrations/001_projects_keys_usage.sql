-- Projects own every resource; API keys belong to one project.
CREATE TABLE projects (
  id          text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id            text PRIMARY KEY,
  project_id    text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name          text,
  -- SHA-256 of the whole key, hex. The key itself is never stored.
  key_hash      text NOT NULL UNIQUE,
  -- What `cairn keys list` shows: "sk-cairn-AbCd…wxyz".
  redacted      text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz
);
CREATE INDEX api_keys_project_idx ON api_keys (project_id);

-- One row per proxied request.
CREATE TABLE usage_records (
  id                 bigserial PRIMARY KEY,
  project_id         text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  api_key_id         text NOT NULL,
  request_id         text NOT NULL,
  endpoint           text NOT NULL,
  model              text NOT NULL,
  prompt_tokens      integer NOT NULL DEFAULT 0,
  completion_tokens  integer NOT NULL DEFAULT 0,
  status             integer NOT NULL,
  latency_ms         integer NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_project_time_idx ON usage_records (project_id, created_at);
