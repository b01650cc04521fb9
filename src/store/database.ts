/**
 * The SQL port. Two adapters run the same SQL and the same migrations:
 * PostgreSQL through `pg` (server mode) and PGlite, Postgres compiled to WASM, in the data dir (embedded).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { ServiceUnavailableError } from '../errors.ts';

export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs several statements (a migration file) at once. */
  exec(sql: string): Promise<void>;
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Socket errors, pg's own "connection terminated/timeout" errors, SQLSTATE class 08 and server shutdown/startup. */
const CONNECTION_SQLSTATES = /^(08...|57P0[123]|53300)$/;
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const CONNECTION_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * A lost or refused connection (a Postgres restart, a network cut) becomes a 503 naming the
 * database, without the driver's details; the pool opens new connections by itself when it is back.
 */
function unavailableIfDisconnected(error: unknown): unknown {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const lost =
    (typeof code === 'string' && (SOCKET_CODES.has(code) || CONNECTION_SQLSTATES.test(code))) ||
    (typeof message === 'string' && CONNECTION_MESSAGES.test(message));
  return lost ? new ServiceUnavailableError('The database (PostgreSQL) is unavailable; try again shortly.', { cause: error }) : error;
}

export class PostgresDatabase implements Database {
  readonly kind = 'postgres';
  private readonly pool: pg.Pool;

  constructor(connectionString: string, poolSize: number, onError: (error: Error) => void) {
    this.pool = new pg.Pool({ connectionString, max: poolSize, connectionTimeoutMillis: 5_000 });
    // An idle client losing its connection (Postgres restart) must not crash the process; the pool replaces it.
    this.pool.on('error', onError);
  }

  async query<Row>(sql: string, params: unknown[] = []): Promise<Row[]> {
    const result = await this.pool.query(sql, params).catch((error: unknown) => {
      throw unavailableIfDisconnected(error);
    });
    return result.rows as Row[];
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql).catch((error: unknown) => {
      throw unavailableIfDisconnected(error);
    });
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect().catch((error: unknown) => {
      throw unavailableIfDisconnected(error);
    });
    try {
      await client.query('BEGIN');
      const tx: Queryable = {
        query: async <Row>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as Row[],
      };
      const result = await work(tx);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw unavailableIfDisconnected(error);
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export class PgliteDatabase implements Database {
  readonly kind = 'pglite';

  private constructor(private readonly db: PGlite) {}

  /** `directory` undefined keeps the database in memory (tests). */
  static async open(directory: string | undefined): Promise<PgliteDatabase> {
    if (directory) mkdirSync(path.dirname(directory), { recursive: true });
    const db = directory ? new PGlite(directory) : new PGlite();
    await db.waitReady;
    return new PgliteDatabase(db);
  }

  async query<Row>(sql: string, params: unknown[] = []): Promise<Row[]> {
    const result = await this.db.query<Row>(sql, params);
    return result.rows;
  }

  async exec(sql: string): Promise<void> {
    await this.db.exec(sql);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) =>
      work({ query: async <Row>(sql: string, params: unknown[] = []) => (await tx.query<Row>(sql, params)).rows }),
    );
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

export async function openDatabase(options: {
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize: number;
  onError: (error: Error) => void;
}): Promise<Database> {
  if (options.databaseUrl) return new PostgresDatabase(options.databaseUrl, options.poolSize, options.onError);
  return PgliteDatabase.open(path.join(options.dataDir, 'pglite'));
}
