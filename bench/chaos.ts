/**
 * `npm run bench:chaos`: a bounded chaos soak that keeps issue 9's reliability bugs found.
 *
 * Two projects (keys from `cairn keys create`) drive a seeded random mix of upload, identical-bytes
 * upload across projects (racing a delete of the other project's copy), delete, attach, re-attach
 * with other chunking, detach, search and chat with `knowledge_bases` (model `extractive`) through
 * the official `openai` SDK, from several lanes at once, while the bench SIGKILLs and restarts:
 *   - server mode: the API (`cairn serve`) and one of the workers (`cairn worker`), on a fresh
 *     PostgreSQL database, Redis with a queue of its own and a Qdrant started from node_modules;
 *   - embedded mode: the one `cairn serve` (PGlite, in-process jobs, managed Qdrant) in its own data dir.
 * Before an API kill, an upload is left half sent, so a kill always interrupts one.
 *
 * After each round, with every process back and no request in flight, it checks (chaos-invariants.ts):
 * every answered upload's bytes are retrievable and identical; every attached file ends `completed`
 * or `failed` within --settle-seconds; Qdrant points per knowledge base = sum of the completed files'
 * `chunk_count`, none with `ready: false`; neither project sees the other's files or knowledge bases;
 * `blobs/staging/` is empty. At each kill (chaos-cluster.ts): the managed Qdrant of a SIGKILLed
 * embedded server exits by itself, and a key `cairn keys create` made while the embedded server runs
 * works at once and after the restart. In server mode, the two projects' keys are created by two
 * `cairn keys create` at once on the new database (both must succeed). Any 500 answer is a violation too.
 *
 * Prints, per mode, operations by kind and outcome, kills, and violations by invariant with the first
 * examples; exits 1 if there is any. Loopback only; needs PostgreSQL and Redis as the tests do
 * (TEST_DATABASE_ADMIN_URL, BENCH_REDIS_URL). `--seed` replays the same choices of operations and
 * kills (their timing against the server still varies).
 *
 *   --mode=both|server|embedded  BENCH_CHAOS_MODE      default both
 *   --rounds=N                   BENCH_ROUNDS          rounds per mode (default 3)
 *   --seconds=S                  BENCH_SECONDS         seconds of operations per round (default 15)
 *   --lanes=N                    BENCH_LANES           operations in flight at once (default 4)
 *   --workers=N                  BENCH_WORKERS         server-mode workers (default 2)
 *   --settle-seconds=S           BENCH_SETTLE_SECONDS  bound for files to leave in_progress (default 60)
 *   --big-mb=N                   BENCH_BIG_MB          size of the CSV most rounds also attach (default 6; 0: none)
 *   --seed=N                     BENCH_SEED            default: random, printed
 *   --json=FILE                  BENCH_JSON            also write the results as JSON
 * Defaults (2 × 3 rounds of 15 s) took 342 s on the shared 2-core machine at load average 18; the
 * fixed part is each mode's start (keys by the CLI, processes under tsx) and the 60 s settle bound,
 * which only a stuck file uses up.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedCluster, ServerCluster, type Cluster, type Mode, type Violation } from './chaos-cluster.ts';
import { checkContent, checkIsolation, checkPoints, checkStaging, settle, stagingFiles, waitOutStagingGrace } from './chaos-invariants.ts';
import { liveChildren } from './chaos-process.ts';
import { seededRandom, Workload, type Outcome } from './chaos-workload.ts';
import { option } from './options.ts';

const int = (name: string, env: string, fallback: number): number => {
  const value = Number.parseInt(option(name, env) ?? String(fallback), 10);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
  return value;
};
const MODE = option('mode', 'BENCH_CHAOS_MODE') ?? 'both';
if (!['both', 'server', 'embedded'].includes(MODE)) throw new Error('--mode must be both, server or embedded');
const ROUNDS = int('rounds', 'BENCH_ROUNDS', 3);
const SECONDS = int('seconds', 'BENCH_SECONDS', 15);
const LANES = Math.max(1, int('lanes', 'BENCH_LANES', 4));
const WORKERS = Math.max(1, int('workers', 'BENCH_WORKERS', 2));
const SETTLE_MS = int('settle-seconds', 'BENCH_SETTLE_SECONDS', 60) * 1000;
const SEED = int('seed', 'BENCH_SEED', Math.floor(Math.random() * 2 ** 31));
const BIG_MB = int('big-mb', 'BENCH_BIG_MB', 6);
const JSON_FILE = option('json', 'BENCH_JSON');
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Chance per round that a target is killed: workers and the embedded server often, the API a bit less. */
const KILL_CHANCE: Record<string, number> = { worker: 0.8, server: 0.8, api: 0.6 };
const EXAMPLES = 3;

const started = Date.now();
const log = (message: string): void => void process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
const tempDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-chaos-'));
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL'); // last resort
  rmSync(tempDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});
let clusterInUse: Cluster | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    void (clusterInUse?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

interface ModeResult {
  mode: Mode;
  rounds: number;
  operations: Record<string, Outcome>;
  kills: Record<string, number>;
  violations: Record<string, { count: number; examples: string[] }>;
  /** Files that ended `failed` (not a violation by itself; the cause may be one). */
  failedFiles: Array<{ kb: string; file: string; error: string }>;
  contentChecks: number;
  seconds: number;
}

async function runMode(mode: Mode, modeIndex: number): Promise<ModeResult> {
  const modeStarted = Date.now();
  const random = seededRandom(SEED + modeIndex);
  const violations: Violation[] = [];
  const kills: Record<string, number> = {};
  /** A file stuck, a leftover or a knowledge base out of step is counted once, not in every round it persists. */
  const reported = new Set<string>();
  let workload: Workload | undefined;
  let failedFiles: ModeResult['failedFiles'] = [];
  let contentChecks = 0;
  let roundsDone = 0;
  let cluster: Cluster | undefined;
  try {
    log(`${mode}: starting (seed ${SEED})`);
    cluster = mode === 'server'
      ? await ServerCluster.start({ tempDir, redisUrl: REDIS_URL, workers: WORKERS, random })
      : await EmbeddedCluster.start({ tempDir });
    clusterInUse = cluster;
    violations.push(...cluster.startupViolations);
    workload = new Workload(cluster, SEED);
    log(`${mode}: up at ${cluster.baseUrl()}`);
    await workload.setup();
    for (let round = 1; round <= ROUNDS; round++) {
      await runRound(cluster, workload, { mode, modeIndex, round, violations, kills });
      const found: Violation[] = [];
      const settled = await settle(workload, SETTLE_MS, found);
      failedFiles = settled.failed;
      contentChecks += await checkContent(workload, found);
      await checkPoints(cluster, workload, found);
      await checkIsolation(workload, found);
      await checkStaging(cluster, found);
      const fresh = [...found, ...workload.violations.splice(0)].filter((violation) => {
        const key = `${violation.invariant} ${violation.key ?? violation.detail}`;
        return !reported.has(key) && Boolean(reported.add(key));
      });
      violations.push(...fresh);
      roundsDone = round;
      log(`${mode} round ${round}/${ROUNDS}: ${fresh.length} new violation(s), ${settled.failed.length} failed file(s) so far`);
    }
    // Partial uploads of the last round are still within the sweeper's grace: wait it out, then judge them.
    await waitOutStagingGrace(cluster);
    const leftovers: Violation[] = [];
    await checkStaging(cluster, leftovers);
    violations.push(...leftovers.filter((violation) => !reported.has(`${violation.invariant} ${violation.key ?? violation.detail}`)));
    if (cluster instanceof EmbeddedCluster) {
      log(`${mode}: cairn keys create while the server runs, then SIGKILL and restart`);
      violations.push(...(await cluster.checkCliKeyWhileRunning()));
      kills.server = (kills.server ?? 0) + 1;
    }
  } catch (error) {
    // A process that does not come back after a kill ends this mode; what it showed is kept.
    const invariant = error instanceof RestartFailed ? 'restart' : 'aborted';
    violations.push({ invariant, detail: summarize(error) });
    log(`${mode}: ${invariant}: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await cluster?.stop().catch((error: Error) => log(`${mode}: stop failed: ${error.message}`));
    clusterInUse = undefined;
  }
  const grouped: ModeResult['violations'] = {};
  for (const violation of violations) {
    const entry = (grouped[violation.invariant] ??= { count: 0, examples: [] });
    entry.count += 1;
    if (entry.examples.length < EXAMPLES) entry.examples.push(violation.detail);
  }
  return {
    mode, rounds: roundsDone, operations: Object.fromEntries(workload?.outcomes ?? []), kills, violations: grouped, failedFiles, contentChecks,
    seconds: Math.round((Date.now() - modeStarted) / 1000),
  };
}

class RestartFailed extends Error {}

/** The error's first line and, from a child's output, the line that names what went wrong. */
function summarize(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const cause = text.split('\n').find((line, index) => index > 0 && /Error|Aborted|FATAL/.test(line));
  return `${text.split('\n')[0]}${cause ? ` — ${cause.trim()}` : ''}`.slice(0, 400);
}

/**
 * One round: LANES lanes of operations for SECONDS, while the kill schedule (seeded: which targets,
 * when) SIGKILLs and restarts processes. Before an API kill an upload is left half sent.
 */
async function runRound(
  cluster: Cluster,
  workload: Workload,
  { mode, modeIndex, round, violations, kills }: { mode: Mode; modeIndex: number; round: number; violations: Violation[]; kills: Record<string, number> },
): Promise<void> {
  const roundRandom = seededRandom(SEED + modeIndex * 7919 + round * 104_729);
  const schedule = cluster.targets
    .filter((target) => roundRandom() < (KILL_CHANCE[target] ?? 0.5))
    .map((target) => ({ target, atMs: (0.15 + 0.6 * roundRandom()) * SECONDS * 1000 }))
    .sort((a, b) => a.atMs - b.atMs);
  const bigTenant = BIG_MB > 0 && roundRandom() < 0.7 ? Math.floor(roundRandom() * 2) : undefined;
  const roundStarted = Date.now();
  const roundEnds = roundStarted + SECONDS * 1000;
  const big = bigTenant === undefined ? undefined : workload.bigAttach(bigTenant, BIG_MB, seededRandom(SEED + round));
  let restartFailed: unknown;
  const killer = (async () => {
    for (const kill of schedule) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, roundStarted + kill.atMs - Date.now())));
      const before = new Set(await stagingFiles(cluster));
      const partial = kill.target === 'worker'
        ? undefined
        : await workload.startPartialUpload(0, async () => (await stagingFiles(cluster)).some((name) => !before.has(name)));
      log(`${mode} round ${round}: SIGKILL ${kill.target}`);
      kills[kill.target] = (kills[kill.target] ?? 0) + 1;
      try {
        violations.push(...(await cluster.killAndRestart(kill.target)));
      } catch (error) {
        restartFailed = error;
        return;
      } finally {
        partial?.cancel();
      }
    }
  })();
  const lanes = Array.from({ length: LANES }, (_, lane) =>
    workload.lane(seededRandom(SEED + round * 31 + lane * 1_000_003 + modeIndex), () => Date.now() < roundEnds && restartFailed === undefined),
  );
  await Promise.all([killer, big, ...lanes]);
  if (restartFailed !== undefined) throw new RestartFailed(`round ${round}: ${(restartFailed as Error).message}`);
  await cluster.whenUp();
}

function table(result: ModeResult): string {
  const lines = [`\n== ${result.mode} mode: ${result.rounds} rounds of ${SECONDS} s, ${result.seconds} s in all, seed ${SEED}`];
  lines.push(`${'operation'.padEnd(16)}${'ok'.padStart(7)}${'4xx'.padStart(7)}${'no reply'.padStart(10)}${'5xx'.padStart(7)}`);
  for (const [kind, o] of Object.entries(result.operations).sort()) {
    lines.push(`${kind.padEnd(16)}${String(o.ok).padStart(7)}${String(o.rejected).padStart(7)}${String(o.unanswered).padStart(10)}${String(o.failed).padStart(7)}`);
    for (const example of o.rejectedExamples) lines.push(`    4xx e.g. ${example}`);
  }
  lines.push(`kills: ${Object.entries(result.kills).map(([target, n]) => `${target} ${n}`).join(', ') || 'none'}`);
  lines.push(`uploads read back and compared: ${result.contentChecks}; files ended failed: ${result.failedFiles.length}`);
  for (const failed of result.failedFiles.slice(0, EXAMPLES)) lines.push(`  failed ${failed.kb}/${failed.file}: ${failed.error}`);
  const invariants = ['content', 'settled', 'points', 'isolation', 'staging', ...(result.mode === 'embedded' ? ['orphan-qdrant', 'cli-key'] : ['cli-concurrent']), 'http-500', 'restart'];
  for (const name of Object.keys(result.violations)) if (!invariants.includes(name)) invariants.push(name);
  lines.push(`${'invariant'.padEnd(16)}violations`);
  for (const name of invariants) {
    const entry = result.violations[name];
    lines.push(`${name.padEnd(16)}${String(entry?.count ?? 0).padStart(10)}`);
    for (const example of entry?.examples ?? []) lines.push(`    e.g. ${example}`);
  }
  return lines.join('\n');
}

const modes: Mode[] = MODE === 'both' ? ['server', 'embedded'] : [MODE as Mode];
const results: ModeResult[] = [];
let exitCode = 0;
try {
  for (const [index, mode] of modes.entries()) results.push(await runMode(mode, index));
} catch (error) {
  log(`chaos bench aborted: ${(error as Error).stack ?? String(error)}`);
  exitCode = 2;
}
for (const result of results) process.stdout.write(`${table(result)}\n`);
const total = results.reduce((sum, result) => sum + Object.values(result.violations).reduce((s, v) => s + v.count, 0), 0);
process.stdout.write(`\n${total === 0 ? 'no violations' : `${total} violation(s)`} (seed ${SEED}; replay with --seed=${SEED})\n`);
if (JSON_FILE) writeFileSync(JSON_FILE, `${JSON.stringify({ seed: SEED, rounds: ROUNDS, seconds: SECONDS, lanes: LANES, workers: WORKERS, settleSeconds: SETTLE_MS / 1000, results }, null, 2)}\n`);
process.exit(exitCode || (total > 0 ? 1 : 0));
