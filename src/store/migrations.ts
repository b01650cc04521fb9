/** Applies migrations/NNN_name.sql in order, once each, recorded in schema_migrations. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.ts';

// Works from src/ (tsx) and from dist/src/ (compiled): walk up to the folder that holds migrations/.
function findMigrationsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i += 1) {
    const candidate = path.join(dir, 'migrations');
    try {
      readdirSync(candidate);
      return candidate;
    } catch {
      dir = path.dirname(dir);
    }
  }
  throw new Error('migrations/ directory not found next to the Cairn sources');
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function readMigrations(directory = findMigrationsDir()): Migration[] {
  return readdirSync(directory)
    .filter((file) => /^\d+_.+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number.parseInt(file, 10),
      name: file.replace(/\.sql$/, ''),
      sql: readFileSync(path.join(directory, file), 'utf8'),
    }));
}

/** The advisory lock every migrating process takes (one at a time per database). */
const MIGRATION_LOCK = 7261757;

/** Returns the names of the migrations it applied. Safe to run from several processes at once. */
export async function migrate(db: Database, migrations = readMigrations()): Promise<string[]> {
  // Under the same lock as the migrations: two processes creating the table at once on a fresh
  // PostgreSQL database collide in pg_type (23505) despite IF NOT EXISTS.
  await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  });
  const applied: string[] = [];
  for (const migration of migrations) {
    const ran = await db.transaction(async (tx) => {
      // Serialises concurrent starters (several API replicas); the lock ends with the transaction.
      await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (done.length > 0) return false;
      for (const statement of splitStatements(migration.sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      return true;
    });
    if (ran) applied.push(migration.name);
  }
  return applied;
}

/**
 * Splits a migration file into statements so each runs inside the migration's transaction
 * through the extended protocol. Migrations keep to plain DDL: no function bodies with `;`.
 */
export function splitStatements(sql: string): string[] {
  return sql
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .split(';')
    .map((statement) => statement.trim())
    .filter(Boolean);
}
