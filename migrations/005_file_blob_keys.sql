-- Each file owns its bytes under its own blob key ('files/<uuid>'). Content-addressed sharing
-- ('sha256/<hash>', one blob for every file with the same bytes) lost an upload that raced the
-- delete of another file with the same bytes. Files stored before keep their shared key; a
-- delete removes such a blob only when no other row still names it (rows locked, see files.ts).
ALTER TABLE files ADD COLUMN blob_key text;
UPDATE files SET blob_key = 'sha256/' || sha256;
ALTER TABLE files ALTER COLUMN blob_key SET NOT NULL;
CREATE INDEX files_blob_key_idx ON files (blob_key);
DROP INDEX files_sha256_idx;
