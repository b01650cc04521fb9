/**
 * Sync semantics of `cairn ingest` for folders: each uploaded file carries its `path` (relative to
 * the folder's parent, so the same folder gives the same paths from any working directory) and the
 * `sha256` of its content as attributes in the knowledge base. A second run compares: unchanged
 * files are skipped, changed ones replaced, and with --delete files gone from the folder detached.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { KbFileObject } from './cairn-api-client.ts';

export interface LocalFile {
  absolute: string;
  /** The `path` attribute, with forward slashes: `docs/guide/setup.md` for the folder `./docs`. */
  key: string;
  sha256: string;
}

export interface SyncPlan {
  upload: LocalFile[];
  /** Of `upload`, the files the knowledge base holds an older version of. */
  changed: Set<string>;
  skip: LocalFile[];
  /** Older versions and duplicates of the files in `upload`/`skip`: removed once the new ones are in. */
  superseded: KbFileObject[];
  /** Files under the given folders that are no longer there (only with --delete). */
  gone: KbFileObject[];
}

/** Attribute values are limited to 512 characters; a longer path cannot be synced, only uploaded. */
export const MAX_KEY_LENGTH = 512;
/** States in which a file with the same content needs no new upload. */
const KEPT_STATES = new Set(['completed', 'in_progress']);

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

async function* walk(target: string): AsyncGenerator<string> {
  const info = await stat(target);
  if (info.isFile()) {
    yield target;
    return;
  }
  for (const entry of await readdir(target, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    yield* walk(path.join(target, entry.name));
  }
}

/** The files under `targets` (dotfiles skipped), with their keys and hashes, and the folder prefixes --delete may touch. */
export async function collectLocalFiles(targets: string[]): Promise<{ files: LocalFile[]; prefixes: string[] }> {
  const files = new Map<string, LocalFile>();
  const prefixes: string[] = [];
  for (const target of targets) {
    const root = path.resolve(target);
    const parent = path.dirname(root);
    if ((await stat(root)).isDirectory()) prefixes.push(`${path.relative(parent, root).split(path.sep).join('/')}/`);
    for await (const absolute of walk(root)) {
      const key = path.relative(parent, absolute).split(path.sep).join('/');
      files.set(key, { absolute, key, sha256: await sha256Of(absolute) });
    }
  }
  return { files: [...files.values()], prefixes };
}

const keyOf = (file: KbFileObject): string | undefined => (typeof file.attributes?.path === 'string' ? file.attributes.path : undefined);

export function planSync(local: LocalFile[], remote: KbFileObject[], options: { deleteMissing: boolean; prefixes: string[] }): SyncPlan {
  const byKey = new Map<string, KbFileObject[]>();
  for (const file of remote) {
    const key = keyOf(file);
    if (key !== undefined) byKey.set(key, [...(byKey.get(key) ?? []), file]);
  }
  const plan: SyncPlan = { upload: [], changed: new Set(), skip: [], superseded: [], gone: [] };
  for (const file of local) {
    const versions = byKey.get(file.key) ?? [];
    byKey.delete(file.key);
    const current = versions.find((version) => version.attributes?.sha256 === file.sha256 && KEPT_STATES.has(version.status));
    if (current) plan.skip.push(file);
    else {
      plan.upload.push(file);
      if (versions.length > 0) plan.changed.add(file.key);
    }
    plan.superseded.push(...versions.filter((version) => version !== current));
  }
  if (options.deleteMissing) {
    for (const [key, versions] of byKey) {
      if (options.prefixes.some((prefix) => key.startsWith(prefix))) plan.gone.push(...versions);
    }
  }
  return plan;
}
