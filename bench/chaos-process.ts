/**
 * Child processes of bench/chaos.ts: `node --import tsx src/main.ts <command>` in the repository,
 * watched through the JSON log lines it prints on stdout. The chaos bench SIGKILLs these, so a
 * child only ever ends by a signal we sent or by crashing; both are recorded, never hidden.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const REPO_ROOT = new URL('..', import.meta.url).pathname;
const MAIN = new URL('../src/main.ts', import.meta.url).pathname;

/** Every child still alive, so that the bench can kill them all when it stops for any reason. */
export const liveChildren = new Set<ChildProcess>();

export interface CairnProcess {
  name: string;
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines of stderr and non-JSON stdout, for error messages. */
  tail(): string;
}

/**
 * Starts `cairn <args>` and resolves once a JSON log line satisfies `ready` (e.g. "cairn listening"),
 * after handing every JSON line that mentions one of `watch`'s messages to `onLog`.
 */
export function startCairnProcess(
  name: string,
  args: string[],
  env: Record<string, string>,
  ready: (line: Record<string, unknown>) => boolean,
  onLog: (line: Record<string, unknown>) => void = () => undefined,
  timeoutMs = 90_000,
): Promise<CairnProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(proc);
  const lines: string[] = [];
  const keep = (line: string): void => {
    lines.push(line.slice(0, 400));
    if (lines.length > 30) lines.shift();
  };
  createInterface({ input: proc.stderr! }).on('line', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      liveChildren.delete(proc);
      resolve({ code, signal });
    }),
  );
  const child: CairnProcess = { name, proc, exited, tail: () => lines.join('\n') };
  return new Promise((resolve, reject) => {
    let started = false;
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs);
    const fail = (why: string): void => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`${name} ${why}\n--- last output ---\n${child.tail()}`));
    };
    void exited.then(({ code, signal }) => {
      if (!started) fail(`exited before it was ready (code ${code}, signal ${signal})`);
    });
    // Access-log lines are most of the output; only lines that can matter are parsed.
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return keep(line);
      if (!/"msg":"(cairn listening|ingestion worker started|managed Qdrant started)"|"level":(4|5|6)0/.test(line)) return;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (typeof message.level === 'number' && message.level >= 40) keep(line);
      onLog(message);
      if (!started && ready(message)) {
        started = true;
        clearTimeout(timer);
        resolve(child);
      }
    });
  });
}

/** SIGKILL, and wait for the exit to be observed. */
export async function killHard(child: CairnProcess): Promise<void> {
  child.proc.kill('SIGKILL');
  await child.exited;
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopGracefully(child: CairnProcess, graceMs = 15_000): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Runs a short CLI command (`keys create …`) to completion and returns its stdout. */
export function runCli(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (text: string) => void (stdout += text));
    proc.stderr!.setEncoding('utf8').on('data', (text: string) => void (stderr += text));
    proc.once('exit', (code) => {
      liveChildren.delete(proc);
      if (code === 0) resolve(stdout);
      else reject(new Error(`cairn ${args.join(' ')} exited with ${code}: ${errorSummary(stderr)}`));
    });
  });
}

/** The first error line of a crashed CLI's stderr, with PostgreSQL's `detail` when there is one. */
function errorSummary(stderr: string): string {
  const line = stderr.split('\n').find((text) => /error/i.test(text))?.trim() ?? stderr.trim().split('\n').at(-1) ?? '';
  const detail = /detail: '([^']*)'/.exec(stderr)?.[1];
  return `${line.slice(0, 300)}${detail ? ` (${detail})` : ''}`;
}

/** `cairn keys create --project <project>` prints the key alone on its last line. */
export async function createKeyWithCli(project: string, env: Record<string, string>): Promise<string> {
  const output = await runCli(['keys', 'create', '--project', project], env);
  const key = output.trim().split('\n').at(-1)?.trim();
  if (!key) throw new Error(`cairn keys create printed no key: ${output}`);
  return key;
}

/** True while a process with this pid runs; a zombie (exited, not yet reaped by init) does not count. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The managed Qdrant writes `<its pid> <parent pid>` into `<data dir>/qdrant/qdrant.pid`. */
export function managedQdrantPid(dataDir: string): number | undefined {
  let text = '';
  try {
    text = readFileSync(path.join(dataDir, 'qdrant', 'qdrant.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.split(' ')[0] ?? '', 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Last resort when the bench exits: no Qdrant it started (or caused) stays on the machine. */
export function killAtExit(pidOf: () => number | undefined): void {
  // Prepended: it must read the pid file before bench/chaos.ts's exit handler removes the temp dir.
  process.prependOnceListener('exit', () => {
    const pid = pidOf();
    if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
}

/**
 * Issue 9 (6): after its parent's SIGKILL a managed Qdrant must exit by itself. Polls `pid` for
 * `graceMs`; a survivor is SIGKILLed here (as the next start would) and reported with `true`.
 */
export async function outlivesItsParent(pid: number, graceMs: number): Promise<boolean> {
  const deadline = Date.now() + graceMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}
