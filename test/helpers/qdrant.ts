/**
 * A real Qdrant for tests, started from node_modules and shared by the Cairn instances a test file
 * runs at the same time; it is killed when the last of them releases it. TEST_QDRANT_URL overrides it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManagedQdrant } from '../../src/vectors/managed-qdrant.ts';

export interface QdrantLease {
  url: string;
  release(): Promise<void>;
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let shared: { qdrant: Promise<ManagedQdrant>; storageDir: string; users: number } | undefined;

export async function acquireTestQdrant(): Promise<QdrantLease> {
  if (process.env.TEST_QDRANT_URL) return { url: process.env.TEST_QDRANT_URL, release: async () => undefined };
  if (!shared) {
    const storageDir = mkdtempSync(path.join(tmpdir(), 'cairn-qdrant-'));
    shared = { qdrant: ManagedQdrant.start({ storageDir, logger: quiet }), storageDir, users: 0 };
  }
  const lease = shared;
  lease.users += 1;
  const qdrant = await lease.qdrant;
  return {
    url: qdrant.url,
    async release() {
      lease.users -= 1;
      if (lease.users > 0) return;
      if (shared === lease) shared = undefined;
      await qdrant.stop();
      rmSync(lease.storageDir, { recursive: true, force: true });
    },
  };
}

/** A Qdrant of the test's own, for tests that stop or restart it. */
export async function startOwnQdrant(storageDir = mkdtempSync(path.join(tmpdir(), 'cairn-qdrant-own-'))): Promise<ManagedQdrant & { storageDir: string }> {
  const qdrant = await ManagedQdrant.start({ storageDir, logger: quiet });
  return Object.assign(qdrant, { storageDir });
}
