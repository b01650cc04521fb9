/**
 * Summarises a V8 .cpuprofile (from `npm run bench:gateway -- --profile`): the functions with the
 * most self time, and self time grouped by package / source directory.
 *
 *   node --import tsx bench/profile-top.ts $TMPDIR/cairn-bench-profiles/cairn-<date>.cpuprofile [--top=30] [--skip-ms=N] [--match=REGEXP]
 *
 * --skip-ms ignores the first N ms of the profile (startup, for profiles taken with `node --cpu-prof`);
 * --match limits the inclusive-time list to functions whose "name file [package]" matches.
 */
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  process.stderr.write('usage: node --import tsx bench/profile-top.ts <file.cpuprofile> [--top=30] [--skip-ms=N] [--match=REGEXP]\n');
  process.exit(2);
}
const top = Number(flag('top') ?? 30);
const skipUs = Number(flag('skip-ms') ?? 0) * 1000;
const only = flag('match');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
process.stdout.on('error', () => process.exit(0)); // e.g. piped into head

const selfUs = new Map<number, number>();
let clock = 0;
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0;
  clock += delta;
  if (clock >= skipUs) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
});
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const byId = new Map(profile.nodes.map((node) => [node.id, node]));

function where(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, '');
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return 'node:internal';
  const src = url.indexOf('/src/');
  if (src >= 0) return `cairn ${url.slice(src + 1, url.lastIndexOf('/'))}`;
  return url === '' ? `(${frame.functionName || 'native'})` : url.split('/').slice(-2).join('/');
}

const byFunction = new Map<string, number>();
const byPlace = new Map<string, number>();
for (const [id, us] of selfUs) {
  const frame = byId.get(id)!.callFrame;
  const file = frame.url.split('/').slice(-1)[0] ?? '';
  const key = `${frame.functionName || '(anonymous)'}  ${file}${file ? `:${frame.lineNumber + 1}` : ''}  [${where(frame)}]`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const place = where(frame);
  byPlace.set(place, (byPlace.get(place) ?? 0) + us);
}

const pct = (us: number): string => `${((us / total) * 100).toFixed(1).padStart(5)}%`;
const print = (title: string, entries: Map<string, number>, n: number): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    process.stdout.write(`${pct(us)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}\n`);
  }
};
// Inclusive ("total") time: every function on a sample's stack, counted once per sample.
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const inclusive = new Map<string, number>();
const inclusivePlace = new Map<string, number>();
for (const [id, us] of selfUs) {
  const places = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = byId.get(at)!.callFrame;
    if (frame.url) places.add(where(frame).replace(/^cairn .*/, 'cairn (all of src/)').replace(/^wasm\/.*/, '@electric-sql/pglite'));
  }
  for (const place of places) inclusivePlace.set(place, (inclusivePlace.get(place) ?? 0) + us);
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = byId.get(at)!.callFrame;
    if (!frame.url) continue; // (root), (program), (idle), natives
    const f = frame.url.split('/').slice(-1)[0] ?? '';
    const key = `${frame.functionName || '(anonymous)'}  ${f}:${frame.lineNumber + 1}  [${where(frame)}]`;
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
}

const busy = total - [...selfUs].filter(([id]) => ['(idle)', '(program)'].includes(byId.get(id)!.callFrame.functionName)).reduce((a, [, us]) => a + us, 0);
process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled${skipUs ? ` after the first ${skipUs / 1000} ms` : ''}, ${(busy / 1e6).toFixed(1)} s busy\n`);
print('self time by package / directory', byPlace, 20);
print('total (inclusive) time by package: samples with that package anywhere on the stack (PGlite includes its wasm)', inclusivePlace, 20);
print(`top ${top} functions by self time`, byFunction, top);
const filtered = new Map([...inclusive].filter(([key]) => !only || new RegExp(only).test(key)));
print(`top ${top} functions by total (inclusive) time${only ? ` matching /${only}/` : ''}`, filtered, top);
