/**
 * Gateway overhead benchmark: `npm run bench:gateway` (add `-- --quick` or BENCH_QUICK=1 for a short run).
 *
 * One fast stub upstream (test/helpers/stub-upstream.ts), and the same chat completion request sent
 *   direct      straight to the stub,
 *   node-proxy  through a bare node:http + undici pass-through (bench/node-proxy.ts): the floor for
 *               any Node gateway, i.e. what the extra hop alone costs on this machine,
 *   cairn       through Cairn (bench/cairn-server.ts: loadConfig → createServices → startServer),
 *   cairn-warn  the same with CAIRN_LOG_LEVEL=warn (no access log line), to show what logging costs,
 *   portkey     through the Portkey AI gateway (@portkey-ai/gateway, bench/portkey-server.mjs),
 * each server in a child process of its own, all on 127.0.0.1. This process is only the load
 * generator (undici Pools, one per target, 64 keep-alive connections). Cairn runs as configured
 * by default apart from the model config: embedded mode (PGlite, and a managed Qdrant unless
 * QDRANT_URL is set in the environment), log lines to a temp file instead of stdout.
 *
 * Scenarios, each run in rounds that alternate the targets (rotating the order every round) so
 * that a noisy neighbour hurts every target alike, with a warm-up before every block:
 *   c1     non-streaming, concurrency 1: latency p50/p99
 *   c64    non-streaming, concurrency 64, for a fixed time or request count: throughput
 *   ttfb   streaming, concurrency 1: time until the first SSE `data:` chunk arrives
 * Then Cairn's added latency over direct, its throughput over Portkey's, and PASS/MISS against the targets.
 *
 * Options (flag or environment variable):
 *   --quick                  BENCH_QUICK=1           a short run (~40 s) for smoke-testing; a full run takes ~2 min
 *   --targets=a,b            BENCH_TARGETS           subset/order of direct,node-proxy,cairn,cairn-warn,portkey
 *                                                    (default: all five)
 *   --db=pglite|postgres     BENCH_DB                Cairn's database (default pglite, Cairn's embedded mode;
 *                                                    postgres creates and drops a database via BENCH_ADMIN_URL)
 *   --log-level=info         BENCH_CAIRN_LOG_LEVEL   the `cairn` target's log level (default info, Cairn's default)
 *   --profile                BENCH_PROFILE=1         CPU-profile the Cairn children during the measurements (not
 *                                                    their startup); profiles go to $TMPDIR/cairn-bench-profiles/
 *                                                    (or --profile-dir=…); summarise them with bench/profile-top.ts
 *   --strict                 BENCH_STRICT=1          exit 1 when a target is missed
 *   --scenarios=c1,c64,ttfb  BENCH_SCENARIOS         subset of the scenarios (e.g. only c64 when profiling)
 *   --json=file              BENCH_JSON              also write the results as JSON
 *
 * Besides latency and throughput, the table shows the CPU time (user+sys, from /proc, Linux only)
 * that the gateway's process and the stub's process spent per measured request: a figure that the
 * noise of a shared machine distorts much less than wall-clock numbers. Cairn's database work in a
 * separate Postgres server (--db=postgres) is not in it; PGlite's is, as it runs inside Cairn.
 * A second table shows, per scenario, GC pauses and event-loop delay inside the Cairn processes,
 * which is where latency tails (p99) come from.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { option, truthy } from './options.ts';
import { cpuMs, fmt, fmtInt, percentile, table } from './report.ts';

// ---------------------------------------------------------------- options


const QUICK = truthy(option('quick', 'BENCH_QUICK'));
const PROFILE = truthy(option('profile', 'BENCH_PROFILE'));
const STRICT = truthy(option('strict', 'BENCH_STRICT'));
const JSON_FILE = option('json', 'BENCH_JSON');
const DB = option('db', 'BENCH_DB') ?? 'pglite';
const CAIRN_LOG_LEVEL = option('log-level', 'BENCH_CAIRN_LOG_LEVEL') ?? 'info';
const ALL_TARGETS = ['direct', 'node-proxy', 'cairn', 'cairn-warn', 'portkey'] as const;
type TargetName = (typeof ALL_TARGETS)[number];
const TARGETS = (option('targets', 'BENCH_TARGETS') ?? ALL_TARGETS.join(','))
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean) as TargetName[];
for (const name of TARGETS) {
  if (!ALL_TARGETS.includes(name)) throw new Error(`unknown target ${name}; known: ${ALL_TARGETS.join(', ')}`);
}
if (!['pglite', 'postgres'].includes(DB)) throw new Error(`--db must be pglite or postgres, not ${DB}`);
const ALL_SCENARIOS = ['c1', 'c64', 'ttfb'] as const;
type Scenario = (typeof ALL_SCENARIOS)[number];
const SCENARIOS = (option('scenarios', 'BENCH_SCENARIOS') ?? ALL_SCENARIOS.join(','))
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean) as Scenario[];
for (const name of SCENARIOS) {
  if (!ALL_SCENARIOS.includes(name)) throw new Error(`unknown scenario ${name}; known: ${ALL_SCENARIOS.join(', ')}`);
}

/** How much work each scenario does, per target. Counts and times are per block; a block is one target in one round. */
const PLAN = QUICK
  ? {
      c1: { rounds: 2, requests: 150, warmup: 30 },
      c64: { rounds: 2, maxRequests: 2_000, maxMs: 1_000, warmupMs: 200 },
      ttfb: { rounds: 2, requests: 100, warmup: 20 },
      deadlineMs: 90_000,
    }
  : {
      c1: { rounds: 4, requests: 500, warmup: 100 }, // 2,000 measured requests per target
      c64: { rounds: 4, maxRequests: 5_000, maxMs: 2_000, warmupMs: 300 }, // 20,000 requests or 8 s per target
      // 600 measured streams per target: Portkey holds every stream back 25 ms, so more would blow the time budget.
      ttfb: { rounds: 4, requests: 150, warmup: 25 },
      deadlineMs: 170_000,
    };
const CONCURRENCY = 64;

/** The targets Cairn has to meet. */
const GOALS = { c1AddedP50Ms: 1, c1AddedP99Ms: 3, c64VsPortkey: 1.5, ttfbAddedP50Ms: 2 };

// ---------------------------------------------------------------- child processes

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

interface Child {
  name: string;
  proc: ChildProcess;
  info: Record<string, string>;
  /** Where the child writes its CPU profile (Cairn children with --profile). */
  profileFile?: string;
  /** Called with each JSON object the child prints on stdout after its handshake. */
  onMessage?: (message: Record<string, unknown>) => void;
}
const children: Child[] = [];
const spawned = new Set<ChildProcess>();

/** Starts `node <args>` and waits for the first stdout line that is a JSON object with a `url`. */
function startChild(name: string, args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Child> {
  const proc = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'], // stdin stays open: the children exit when it closes, i.e. if we die
  });
  spawned.add(proc);
  proc.once('exit', (code, signal) => {
    spawned.delete(proc);
    // A child that fails (rather than stopping when asked) says why on stderr: pass it on.
    if (code !== 0 && code !== null && child) process.stderr.write(`${name} exited with code ${code}:\n${stderrTail.join('')}\n`);
    else if (signal === 'SIGKILL' && child) process.stderr.write(`${name} had to be killed\n`);
  });
  const stderrTail: string[] = [];
  let child: Child | undefined;
  proc.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderrTail.push(text);
    if (stderrTail.length > 50) stderrTail.shift();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`${error.message}\n--- ${name} stderr ---\n${stderrTail.join('')}`));
    };
    const onEarlyExit = (code: number | null, signal: string | null): void =>
      fail(new Error(`${name} exited early (code ${code}, signal ${signal})`));
    proc.once('exit', onEarlyExit);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let info: unknown;
      try {
        info = JSON.parse(line.trim());
      } catch {
        return; // Portkey's banner and the like
      }
      if (!info || typeof info !== 'object') return;
      if (child) return child.onMessage?.(info as Record<string, unknown>);
      if (typeof (info as { url?: unknown }).url !== 'string') return;
      clearTimeout(timer);
      proc.off('exit', onEarlyExit);
      child = { name, proc, info: info as Record<string, string> };
      children.push(child);
      resolve(child);
    });
  });
}

/** Sends a command to a Cairn child (see bench/cairn-server.ts) and waits for the answer that has `field`. */
function command(child: Child, line: 'start' | 'stats', field: string): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 5_000);
    child.onMessage = (message) => {
      if (!(field in message)) return;
      clearTimeout(timer);
      resolve(message);
    };
    child.proc.stdin!.write(`${line}\n`);
  });
}


function killAllNow(): void {
  for (const proc of spawned) proc.kill('SIGKILL');
}

/**
 * Stops every child: SIGTERM first, so that Cairn closes what it started itself (its database,
 * a managed Qdrant in embedded mode, its temp dir), then SIGKILL whatever is still running after
 * 20 s. A Cairn child still starting up finishes its startup first, which can take that long.
 */
const terminated = new Set<ChildProcess>();
async function stopAll(): Promise<void> {
  for (const proc of spawned) {
    if (!terminated.has(proc)) proc.kill('SIGTERM'); // once: Cairn may still be busy starting up, then cleans up
    terminated.add(proc);
  }
  const deadline = Date.now() + 20_000;
  while (spawned.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  killAllNow();
}

process.once('exit', killAllNow); // last resort
const logDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-logs-')); // Cairn's log lines
let aborting = false;
const abort = (message: string, code: number): void => {
  if (aborting) return;
  aborting = true;
  process.stderr.write(`\n${message}\n`);
  void stopAll().finally(() => {
    rmSync(logDir, { recursive: true, force: true });
    process.exit(code);
  });
};
process.on('SIGINT', () => abort('SIGINT: stopping the benchmark', 130));
process.on('SIGTERM', () => abort('SIGTERM: stopping the benchmark', 143));
const watchdog = setTimeout(() => abort(`benchmark exceeded its ${PLAN.deadlineMs / 1000} s budget; aborting`, 1), PLAN.deadlineMs);
watchdog.unref();

// ---------------------------------------------------------------- targets

const NON_STREAM_BODY = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'Hello there' }] });
const STREAM_BODY = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'Hello there' }], stream: true });

interface Target {
  name: TargetName;
  path: string;
  headers: Record<string, string>;
  pool: Pool;
  /** The gateway's process, for its CPU time; none for `direct`. */
  pid: number | undefined;
}

function makeTarget(name: TargetName, pid: number | undefined, origin: string, pathname: string, headers: Record<string, string>): Target {
  return {
    name,
    pid,
    path: pathname,
    headers: { 'content-type': 'application/json', ...headers },
    pool: new Pool(origin, { connections: CONCURRENCY, pipelining: 1, keepAliveTimeout: 60_000 }),
  };
}

class RequestFailed extends Error {}

/** One non-streaming request; resolves with its latency (ms) once the whole body has arrived. */
async function completion(target: Target): Promise<number> {
  const started = performance.now();
  const response = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body: NON_STREAM_BODY });
  const text = await response.body.text();
  const latency = performance.now() - started;
  if (response.statusCode !== 200) throw new RequestFailed(`${target.name}: HTTP ${response.statusCode}: ${text.slice(0, 300)}`);
  return latency;
}

/** One streaming request; resolves with the time (ms) until the first body chunk carrying an SSE `data:` line. */
async function firstByte(target: Target): Promise<number> {
  const started = performance.now();
  const response = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body: STREAM_BODY });
  let ttfb = -1;
  let tail = '';
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    if (ttfb < 0 && chunk.includes('data:')) ttfb = performance.now() - started;
    tail = chunk.toString('utf8', Math.max(0, chunk.length - 64));
  }
  if (response.statusCode !== 200) throw new RequestFailed(`${target.name}: HTTP ${response.statusCode}`);
  if (ttfb < 0 || !tail.includes('[DONE]')) throw new RequestFailed(`${target.name}: stream without data or [DONE]`);
  return ttfb;
}

/** Before measuring: each target answers like an OpenAI server, streamed and not. */
async function sanityCheck(target: Target): Promise<void> {
  const response = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body: NON_STREAM_BODY });
  const text = await response.body.text();
  const body = JSON.parse(text) as { model?: string; choices?: Array<{ message?: { content?: string } }> };
  if (response.statusCode !== 200 || !body.choices?.[0]?.message?.content?.includes('stub answer')) {
    throw new Error(`${target.name} did not relay the stub's completion: HTTP ${response.statusCode} ${text.slice(0, 300)}`);
  }
  const stream = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body: STREAM_BODY });
  const events = await stream.body.text();
  if (stream.statusCode !== 200 || !events.includes('"content":"stub "') || !events.trimEnd().endsWith('data: [DONE]')) {
    throw new Error(`${target.name} did not relay the stub's stream: HTTP ${stream.statusCode} ${events.slice(0, 300)}`);
  }
}

// ---------------------------------------------------------------- measurement

interface Sample {
  latencies: number[];
  requests: number;
  errors: number;
  elapsedMs: number;
  /** CPU time of the gateway's and the stub's process during the measured blocks. */
  gatewayCpuMs: number;
  stubCpuMs: number;
  firstError?: string;
}
const emptySample = (): Sample => ({ latencies: [], requests: 0, errors: 0, elapsedMs: 0, gatewayCpuMs: 0, stubCpuMs: 0 });

let stubPid: number | undefined;

/** Runs one measured block, adding the CPU time the gateway and the stub spent meanwhile to `sample`. */
async function measured(target: Target, sample: Sample, block: () => Promise<void>): Promise<void> {
  const gateway = cpuMs(target.pid);
  const stub = cpuMs(stubPid);
  await block();
  sample.gatewayCpuMs += cpuMs(target.pid) - gateway;
  sample.stubCpuMs += cpuMs(stubPid) - stub;
}

const SCENARIO_TITLE: Record<Scenario, string> = {
  c1: 'non-stream, c=1',
  c64: `non-stream, c=${CONCURRENCY}`,
  ttfb: 'stream TTFB, c=1',
};

/** Runs `work` sequentially `count` times (concurrency 1), recording into `sample` unless it is a warm-up. */
async function sequential(target: Target, work: (t: Target) => Promise<number>, count: number, sample?: Sample): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < count; i += 1) {
    try {
      const latency = await work(target);
      sample?.latencies.push(latency);
    } catch (error) {
      if (!sample) throw error;
      sample.errors += 1;
      sample.firstError ??= (error as Error).message;
    }
  }
  if (sample) {
    sample.requests += count;
    sample.elapsedMs += performance.now() - started;
  }
}

/** CONCURRENCY workers send requests back to back until `maxRequests` have been started or `maxMs` has passed. */
async function closedLoop(target: Target, maxRequests: number, maxMs: number, sample?: Sample): Promise<void> {
  const started = performance.now();
  const deadline = started + maxMs;
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < maxRequests && performance.now() < deadline) {
      issued += 1;
      try {
        const latency = await completion(target);
        sample?.latencies.push(latency);
      } catch (error) {
        if (!sample) throw error;
        sample.errors += 1;
        sample.firstError ??= (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (sample) {
    sample.requests += issued;
    sample.elapsedMs += performance.now() - started;
  }
}

/** Rounds over all targets, the order rotating every round; a warm-up precedes each block. */
async function runScenario(scenario: Scenario, targets: Target[]): Promise<Map<TargetName, Sample>> {
  const samples = new Map(targets.map((t) => [t.name, emptySample()]));
  const rounds = PLAN[scenario].rounds;
  for (let round = 0; round < rounds; round += 1) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const target of order) {
      const sample = samples.get(target.name)!;
      if (scenario === 'c1') {
        await sequential(target, completion, PLAN.c1.warmup);
        await measured(target, sample, () => sequential(target, completion, PLAN.c1.requests, sample));
      } else if (scenario === 'ttfb') {
        await sequential(target, firstByte, PLAN.ttfb.warmup);
        await measured(target, sample, () => sequential(target, firstByte, PLAN.ttfb.requests, sample));
      } else {
        await closedLoop(target, Number.POSITIVE_INFINITY, PLAN.c64.warmupMs);
        await measured(target, sample, () => closedLoop(target, PLAN.c64.maxRequests, PLAN.c64.maxMs, sample));
      }
    }
  }
  return samples;
}

interface Stats {
  n: number;
  errors: number;
  p50: number;
  p99: number;
  mean: number;
  rps: number;
  /** CPU µs per request of the gateway's process and of the stub's. */
  gatewayCpuUs: number;
  stubCpuUs: number;
}


function stats(sample: Sample): Stats {
  const sorted = Float64Array.from(sample.latencies).sort();
  const sum = sample.latencies.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    errors: sample.errors,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    rps: sample.elapsedMs > 0 ? (sorted.length / sample.elapsedMs) * 1000 : Number.NaN,
    gatewayCpuUs: sample.requests > 0 ? (sample.gatewayCpuMs / sample.requests) * 1000 : Number.NaN,
    stubCpuUs: sample.requests > 0 ? (sample.stubCpuMs / sample.requests) * 1000 : Number.NaN,
  };
}

// ---------------------------------------------------------------- report



// ---------------------------------------------------------------- main

const runStarted = performance.now();
const log = (message: string): void => void process.stderr.write(`[${((performance.now() - runStarted) / 1000).toFixed(1)}s] ${message}\n`);

const profileDir = path.resolve(option('profile-dir', 'BENCH_PROFILE_DIR') ?? path.join(os.tmpdir(), 'cairn-bench-profiles'));
if (PROFILE) mkdirSync(profileDir, { recursive: true });

let exitCode = 0;
try {
  log(`starting the stub upstream${QUICK ? ' (quick run)' : ''}`);
  const stub = await startChild('stub', ['--import', 'tsx', path.join(here, 'stub-server.ts')]);
  const stubUrl = stub.info.url!; // http://127.0.0.1:<port>/v1
  stubPid = stub.proc.pid;

  const cairnChild = async (name: TargetName, level: string): Promise<Child> => {
    const profileFile = path.join(profileDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    const child = await startChild(
      name,
      ['--expose-gc', '--import', 'tsx', path.join(here, 'cairn-server.ts')], // gc(): live heap size in the statistics
      {
        BENCH_STUB_URL: stubUrl,
        BENCH_DB: DB,
        BENCH_LOG_FILE: path.join(logDir, `${name}.log`),
        CAIRN_LOG_LEVEL: level,
        ...(PROFILE ? { BENCH_PROFILE_FILE: profileFile } : {}),
      },
    );
    if (PROFILE) child.profileFile = profileFile;
    return child;
  };
  log(`starting ${TARGETS.filter((t) => t !== 'direct').join(', ')} (Cairn db: ${DB})`);
  const started = await Promise.all(
    TARGETS.map(async (name): Promise<Target> => {
      const stubOrigin = new URL(stubUrl).origin;
      switch (name) {
        case 'direct':
          return makeTarget(name, undefined, stubOrigin, `${new URL(stubUrl).pathname}/chat/completions`, {});
        case 'cairn':
        case 'cairn-warn': {
          const child = await cairnChild(name, name === 'cairn-warn' ? 'warn' : CAIRN_LOG_LEVEL);
          return makeTarget(name, child.proc.pid, child.info.url!, '/v1/chat/completions', { authorization: `Bearer ${child.info.key}` });
        }
        case 'node-proxy': {
          const child = await startChild(name, ['--import', 'tsx', path.join(here, 'node-proxy.ts')], { BENCH_STUB_URL: stubUrl });
          return makeTarget(name, child.proc.pid, child.info.url!, '/v1/chat/completions', {});
        }
        case 'portkey': {
          const child = await startChild('portkey', [path.join(here, 'portkey-server.mjs')]);
          return makeTarget(name, child.proc.pid, child.info.url!, '/v1/chat/completions', {
            authorization: 'Bearer sk-bench-unused',
            'x-portkey-provider': 'openai',
            'x-portkey-custom-host': stubUrl,
          });
        }
      }
    }),
  );
  const targets = started;
  for (const target of targets) await sanityCheck(target);
  log('all targets answer correctly');

  const cairnChildren = TARGETS.filter((name) => name.startsWith('cairn')).map((name) => children.find((child) => child.name === name)!);
  const results: Partial<Record<Scenario, Map<TargetName, Stats>>> = {};
  const runtime: Array<{ scenario: Scenario; target: string; stats: Record<string, number> }> = [];
  for (const scenario of SCENARIOS) {
    log(`scenario ${SCENARIO_TITLE[scenario]}: ${PLAN[scenario].rounds} rounds over ${targets.map((t) => t.name).join(', ')}`);
    await Promise.all(cairnChildren.map((child) => command(child, 'start', 'started')));
    const samples = await runScenario(scenario, targets);
    for (const child of cairnChildren) {
      const answer = await command(child, 'stats', 'stats');
      if (answer) runtime.push({ scenario, target: child.name, stats: answer.stats as Record<string, number> });
    }
    results[scenario] = new Map([...samples].map(([name, sample]) => [name, stats(sample)]));
    for (const [name, sample] of samples) {
      if (sample.errors > 0) log(`  ${name}: ${sample.errors} failed requests, first: ${sample.firstError}`);
    }
  }
  const elapsed = (performance.now() - runStarted) / 1000;

  // --- the table
  const rows: string[][] = [];
  for (const scenario of SCENARIOS) {
    for (const target of targets) {
      const s = results[scenario]!.get(target.name)!;
      rows.push([
        SCENARIO_TITLE[scenario], target.name, fmtInt(s.n), fmt(s.p50), fmt(s.p99), fmt(s.mean), fmtInt(s.rps),
        fmtInt(s.gatewayCpuUs), fmtInt(s.stubCpuUs), String(s.errors),
      ]);
    }
  }
  const cpu = os.cpus();
  const cairnDescription = (name: TargetName): string => `${name === 'cairn-warn' ? 'warn' : CAIRN_LOG_LEVEL}, ${DB}`;
  const lines: string[] = [];
  lines.push(
    `Gateway overhead — ${new Date().toISOString()} — ${cpu.length} × ${cpu[0]?.model.trim() ?? '?'}, node ${process.version}, ` +
      `${QUICK ? 'quick run' : 'full run'}, ${elapsed.toFixed(0)} s`,
  );
  lines.push(
    `Cairn: ${targets.filter((t) => t.name.startsWith('cairn')).map((t) => `${t.name} (log level ${cairnDescription(t.name)})`).join('; ') || 'not run'}` +
      `${PROFILE ? ' — CPU profiler on' : ''}`,
  );
  lines.push('');
  lines.push(
    table(
      ['scenario', 'target', 'n', 'p50 ms', 'p99 ms', 'mean ms', 'req/s', 'gateway CPU µs/req', 'stub CPU µs/req', 'errors'],
      rows,
      [false, false, true, true, true, true, true, true, true, true],
    ),
  );

  // --- Cairn against the goals
  const checks: Array<{ target: string; goal: string; value: string; pass: boolean }> = [];
  const direct = (scenario: Scenario): Stats | undefined => results[scenario]?.get('direct');
  const portkey = results.c64?.get('portkey');
  for (const name of ['cairn', 'cairn-warn'] as const) {
    if (!TARGETS.includes(name)) continue;
    const c1 = results.c1?.get(name);
    const ttfb = results.ttfb?.get(name);
    const c64 = results.c64?.get(name);
    const d1 = direct('c1');
    const dt = direct('ttfb');
    if (c1 && d1) {
      const added50 = c1.p50 - d1.p50;
      const added99 = c1.p99 - d1.p99;
      checks.push({ target: name, goal: `c=1 added p50 ≤ ${GOALS.c1AddedP50Ms} ms`, value: `${fmt(added50)} ms`, pass: added50 <= GOALS.c1AddedP50Ms });
      checks.push({ target: name, goal: `c=1 added p99 ≤ ${GOALS.c1AddedP99Ms} ms`, value: `${fmt(added99)} ms`, pass: added99 <= GOALS.c1AddedP99Ms });
    }
    if (c64 && portkey) {
      const ratio = c64.rps / portkey.rps;
      checks.push({ target: name, goal: `c=${CONCURRENCY} req/s ≥ ${GOALS.c64VsPortkey}× Portkey`, value: `${fmt(ratio)}×`, pass: ratio >= GOALS.c64VsPortkey });
    }
    if (ttfb && dt) {
      const added = ttfb.p50 - dt.p50;
      checks.push({
        target: name,
        goal: `stream TTFB added p50 ≤ ${GOALS.ttfbAddedP50Ms} ms`,
        value: `${fmt(added)} ms (p99 ${fmt(ttfb.p99 - dt.p99)} ms)`,
        pass: added <= GOALS.ttfbAddedP50Ms,
      });
    }
  }
  const d64 = direct('c64');
  const extras: string[] = [];
  if (d64) {
    const relative = targets.filter((t) => t.name !== 'direct').map((t) => `${t.name} ${fmt((results.c64!.get(t.name)!.rps / d64.rps) * 100, 0)}%`);
    extras.push(`c=${CONCURRENCY} throughput relative to direct: ${relative.join(', ')}`);
  }
  if (portkey) {
    // The same comparison through CPU time per request, which a noisy neighbour distorts far less than req/s.
    const ratios = (['cairn', 'cairn-warn'] as const)
      .filter((name) => results.c64?.has(name))
      .map((name) => `${name} ${fmt(portkey.gatewayCpuUs / results.c64!.get(name)!.gatewayCpuUs)}×`);
    if (ratios.length > 0) extras.push(`c=${CONCURRENCY} Portkey's CPU per request over Cairn's (what the req/s ratio tends to when the gateways are CPU-bound): ${ratios.join(', ')}`);
  }
  if (checks.length > 0) {
    lines.push('');
    lines.push(table(['target', 'goal', 'measured', 'result'], checks.map((c) => [c.target, c.goal, c.value, c.pass ? 'PASS' : 'MISS']), [false, false, true, false]));
  }
  if (extras.length > 0) lines.push('', ...extras);
  if (runtime.length > 0) {
    lines.push('', 'Inside the Cairn processes, per scenario (warm-ups and the other targets\' turns included):', '');
    lines.push(
      table(
        ['scenario', 'target', 'requests', 'GC pauses', 'requests per GC', 'major GCs', 'GC median ms', 'GC max ms', 'loop delay p99 ms', 'loop delay max ms', 'live heap MB'],
        runtime.map(({ scenario, target, stats: r }) => [
          SCENARIO_TITLE[scenario], target, fmtInt(r.requests!), fmtInt(r.gcPauses!), fmtInt(r.requests! / Math.max(1, r.gcPauses!)),
          fmtInt(r.majorGcs!), fmt(r.gcMedianMs!), fmt(r.gcMaxMs!), fmt(r.loopDelayP99Ms!), fmt(r.loopDelayMaxMs!), fmtInt(r.heapLiveMb!),
        ]),
        [false, false, true, true, true, true, true, true, true, true, true],
      ),
    );
  }
  const totalErrors = [...Object.values(results)].reduce((n, m) => n + [...m.values()].reduce((k, s) => k + s.errors, 0), 0);
  if (totalErrors > 0) lines.push('', `WARNING: ${totalErrors} requests failed; see the log above.`);
  if (PROFILE) {
    const files = children.filter((c) => c.name.startsWith('cairn')).map((c) => c.profileFile).filter(Boolean);
    lines.push('', `CPU profiles of the Cairn children (written as they exit; summarise with bench/profile-top.ts):`, ...files.map((f) => `  ${f}`));
  }
  process.stdout.write(`\n${lines.join('\n')}\n`);

  if (JSON_FILE) {
    const json = {
      date: new Date().toISOString(),
      quick: QUICK,
      machine: { cpus: cpu.length, model: cpu[0]?.model.trim(), node: process.version },
      cairn: { logLevel: CAIRN_LOG_LEVEL, db: DB },
      results: Object.fromEntries(Object.entries(results).map(([k, m]) => [k, Object.fromEntries(m)])),
      checks,
      runtime,
    };
    writeFileSync(JSON_FILE, `${JSON.stringify(json, null, 2)}\n`);
  }
  if (totalErrors > 0 || (STRICT && checks.some((c) => !c.pass))) exitCode = 1;
  await Promise.all(targets.map((t) => t.pool.close()));
} catch (error) {
  if (!aborting) process.stderr.write(`\nbenchmark failed: ${(error as Error).stack ?? String(error)}\n`);
  exitCode = 1;
} finally {
  log('stopping the servers');
  await stopAll();
  rmSync(logDir, { recursive: true, force: true });
}
process.exit(exitCode);
