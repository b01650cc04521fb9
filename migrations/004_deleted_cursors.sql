-- A deleted object stays usable as a pagination cursor for a day: the openai SDKs paginate with
-- `after=<last id of the previous page>`, and a client that deletes what it lists (a clean-up
-- loop) asks for the page after an object that is gone. Keyed by the list it belonged to.
CREATE TABLE deleted_cursors (
  scope       text NOT NULL,
  id          text NOT NULL,
  created_at  timestamptz NOT NULL,
  deleted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, id)
);
CREATE INDEX deleted_cursors_deleted_at_idx ON deleted_cursors (deleted_at);
