-- Uploaded files. The bytes live in the blob store under their SHA-256.
CREATE TABLE files (
  id          text PRIMARY KEY,
  project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  filename    text NOT NULL,
  purpose     text NOT NULL,
  bytes       bigint NOT NULL,
  sha256      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_project_created_idx ON files (project_id, created_at, id);
CREATE INDEX files_sha256_idx ON files (sha256);

CREATE TABLE knowledge_bases (
  id                    text PRIMARY KEY,
  project_id            text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name                  text NOT NULL,
  description           text,
  metadata              jsonb NOT NULL DEFAULT '{}',
  -- Pinned at creation: 'none' means lexical-only (BM25).
  embedding_model       text NOT NULL,
  embedding_dimensions  integer,
  chunking_strategy     jsonb NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  last_active_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_bases_project_created_idx ON knowledge_bases (project_id, created_at, id);

CREATE TABLE file_batches (
  id          text PRIMARY KEY,
  kb_id       text NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
  project_id  text NOT NULL,
  cancelled   boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- A file attached to a knowledge base, and the state of its ingestion.
CREATE TABLE knowledge_base_files (
  id                 text PRIMARY KEY,
  kb_id              text NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
  file_id            text NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  project_id         text NOT NULL,
  batch_id           text REFERENCES file_batches(id) ON DELETE SET NULL,
  status             text NOT NULL CHECK (status IN ('in_progress', 'completed', 'failed', 'cancelled')),
  last_error         jsonb,
  attributes         jsonb NOT NULL DEFAULT '{}',
  chunking_strategy  jsonb NOT NULL,
  chunk_count        integer NOT NULL DEFAULT 0,
  usage_bytes        bigint NOT NULL DEFAULT 0,
  -- Fraction of the file's chunks stored so far, 0..1.
  progress           real NOT NULL DEFAULT 0,
  -- Changes on every (re-)ingestion; points of older generations are stale.
  generation         text NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kb_id, file_id)
);
CREATE INDEX knowledge_base_files_kb_created_idx ON knowledge_base_files (kb_id, created_at, file_id);
CREATE INDEX knowledge_base_files_file_idx ON knowledge_base_files (file_id);
CREATE INDEX knowledge_base_files_status_idx ON knowledge_base_files (status) WHERE status = 'in_progress';
CREATE INDEX knowledge_base_files_batch_idx ON knowledge_base_files (batch_id);
