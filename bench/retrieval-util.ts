/**
 * Helpers of bench/retrieval.ts, in the patterns of bench/gateway.ts: child processes that
 * announce themselves with a JSON line on stdout and exit when their stdin closes, CPU time from
 * /proc, nearest-rank percentiles, Markdown tables, and waiting for another benchmark to finish.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { cpuMs, fmt, fmtInt, percentile, table } from './report.ts';

export { cpuMs, fmt, fmtInt, percentile, table };

// ---------------------------------------------------------------- child processes

export interface Child {
  name: string;
  proc: ChildProcess;
  info: Record<string, string>;
  /** Called with each JSON object the child prints on stdout after its handshake. */
  onMessage?: (message: Record<string, unknown>) => void;
}

const spawned = new Set<ChildProcess>();
const terminated = new Set<ChildProcess>();

/** Starts `node <args>` in `cwd` and waits for the first stdout line that is a JSON object with a `url`. */
export function startChild(name: string, cwd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 90_000): Promise<Child> {
  const proc = spawn(process.execPath, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'], // stdin stays open: the children exit when it closes, i.e. if we die
  });
  spawned.add(proc);
  const stderrTail: string[] = [];
  let child: Child | undefined;
  proc.once('exit', (code, signal) => {
    spawned.delete(proc);
    if (code !== 0 && code !== null && child) process.stderr.write(`${name} exited with code ${code}:\n${stderrTail.join('')}\n`);
    else if (signal === 'SIGKILL' && child) process.stderr.write(`${name} had to be killed\n`);
  });
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
    const onEarlyExit = (code: number | null, signal: string | null): void => fail(new Error(`${name} exited early (code ${code}, signal ${signal})`));
    proc.once('exit', onEarlyExit);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let info: unknown;
      try {
        info = JSON.parse(line.trim());
      } catch {
        return;
      }
      if (!info || typeof info !== 'object') return;
      if (child) return child.onMessage?.(info as Record<string, unknown>);
      if (typeof (info as { url?: unknown }).url !== 'string') return;
      clearTimeout(timer);
      proc.off('exit', onEarlyExit);
      child = { name, proc, info: info as Record<string, string> };
      resolve(child);
    });
  });
}

/** Sends a command line to a child and waits for the answer that has `field` (undefined after `timeoutMs`). */
export function command(child: Child, line: string, field: string, timeoutMs = 10_000): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    child.onMessage = (message) => {
      if (!(field in message) && !('error' in message)) return;
      clearTimeout(timer);
      resolve(message);
    };
    child.proc.stdin!.write(`${line}\n`);
  });
}

/** SIGKILL to every child still running: the last resort on exit. */
export function killChildrenNow(): void {
  for (const proc of spawned) proc.kill('SIGKILL');
}

/** SIGTERM to every child (once), so that Cairn closes its pools; SIGKILL after `graceMs`. */
export async function stopChildren(graceMs = 20_000): Promise<void> {
  for (const proc of spawned) {
    if (!terminated.has(proc)) proc.kill('SIGTERM');
    terminated.add(proc);
  }
  const deadline = Date.now() + graceMs;
  while (spawned.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  killChildrenNow();
}

// ---------------------------------------------------------------- CPU time


function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- waiting for another benchmark

/** Pids of processes whose command line contains `pattern` (pgrep -f), other than us and our ancestors (npm, sh). */
export function otherProcesses(pattern: string): number[] {
  const result = spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' });
  if (result.error) throw new Error(`pgrep failed: ${result.error.message}`);
  const mine = new Set<number>();
  for (let pid: number | undefined = process.pid; pid !== undefined && pid > 1 && !mine.has(pid); pid = parentOf(pid)) mine.add(pid);
  return result.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && !mine.has(pid));
}

/**
 * Waits until no other process matches `pattern`, checking every 5 s, for at most `maxMs`.
 * Returns the time waited and whether such a process was still running at the end.
 */
export async function waitUntilGone(pattern: string, maxMs: number, log: (message: string) => void): Promise<{ waitedMs: number; stillRunning: boolean }> {
  const started = Date.now();
  let lastLog = 0;
  for (;;) {
    const pids = otherProcesses(pattern);
    const waitedMs = Date.now() - started;
    if (pids.length === 0) return { waitedMs, stillRunning: false };
    if (waitedMs >= maxMs) {
      log(`still running after ${Math.round(waitedMs / 1000)} s: ${pattern} (pids ${pids.join(', ')}); going ahead anyway`);
      return { waitedMs, stillRunning: true };
    }
    if (Date.now() - lastLog >= 60_000) {
      log(`waiting for ${pattern} to finish (pids ${pids.join(', ')}; waited ${Math.round(waitedMs / 1000)} s of at most ${Math.round(maxMs / 1000)} s)`);
      lastLog = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 5_000));
  }
}

// ---------------------------------------------------------------- statistics and tables


export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  max: number;
}

export function summarise(values: number[]): Summary {
  const sorted = Float64Array.from(values).sort();
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    mean: sorted.length ? values.reduce((a, b) => a + b, 0) / sorted.length : Number.NaN,
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
  };
}


