/**
 * The package as a user gets it: `npm pack`, the tarball installed into an empty folder, a
 * TypeScript program and the examples type-checked against the installed types and run.
 * This proves `main`, `exports`, `types`, `files` and the native build from the tarball.
 *
 * Offline: the folder's lockfile pins relora's dependencies to this repository's lockfile, so
 * `npm ci --offline` takes them from the npm cache that installing this repository filled.
 * Slow (it builds the native addon): run by `npm run test:package`, not by `npm test`.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { countParameters, namedConfig } from '../../src/nn/config.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const work = mkdtempSync(join(tmpdir(), 'relora-package-'));
const app = join(work, 'app');

/** Runs a command; on failure throws with its output (the test's message is then the command's own). */
function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return String(r.stdout);
}

const runApp = (script: string, ...args: string[]): string =>
  run(process.execPath, [join(app, 'out', script), ...args], { cwd: app, env: { ...process.env, RELORA_CACHE_DIR: join(work, 'cache') } });

interface PackResult { filename: string; files: { path: string }[] }

let packed: PackResult;

/**
 * The app's package.json and package-lock.json: relora from the tarball, its dependencies at
 * exactly the versions (and integrity hashes) of this repository's lockfile, dev-only ones left out.
 */
function writeAppManifest(tarball: string): void {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
  const spec = `file:${tarball}`;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(join(app, tarball))).digest('base64')}`;
  const packages: Record<string, unknown> = {
    '': { name: 'app', dependencies: { relora: spec } },
    'node_modules/relora': {
      version: pkg.version, resolved: spec, integrity, hasInstallScript: true, license: pkg.license,
      dependencies: pkg.dependencies, optionalDependencies: pkg.optionalDependencies, bin: pkg.bin, engines: pkg.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) {
    if (path !== '' && !entry.dev) packages[path] = entry;
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { relora: spec } }, null, 2));
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }, null, 2));
}

/** A user's program: the API as types and values, and proof that internals stay hidden. */
const CHECK_PROGRAM = `
import { backendInfo, LlamaForCausalLM, namedConfig, resolveConfig, setBackend, Tensor, type TrainConfigInput } from 'relora';
// @ts-expect-error internal modules are not part of the package's exports
import type { TrainOptions } from 'relora/dist/train/trainer.js';

type _Unused = TrainOptions;
const config: TrainConfigInput = { model: 'llama_9m', mode: 'relora', steps: 100, warm_start_steps: 20, cycle_length: 40 };
const resolved = resolveConfig(config);
setBackend('native');
const model = new LlamaForCausalLM(namedConfig('llama_9m', { vocabSize: 64, maxSeqLen: 8 })).initWeights(0);
const loss = model.loss(Tensor.from([1, 2, 3, 4, 5, 6, 7, 8], [1, 8], 'int32')).item();
let hidden = false;
try {
  await import('relora/dist/engine/backend.js' as string);
} catch (e) {
  hidden = (e as { code?: string }).code === 'ERR_PACKAGE_PATH_NOT_EXPORTED';
}
console.log(JSON.stringify({ backend: backendInfo().backend, loss, gradAccum: resolved.grad_accum, hidden }));
`;

/** Word soup with some structure: enough for a tokenizer and a few dozen updates. */
function corpus(): string[] {
  const words = 'the cat sat on a mat while the dog ran to the park and a bird sang over the river near old trees'.split(' ');
  return Array.from({ length: 160 }, (_, i) => Array.from({ length: 60 }, (_, j) => words[(i * 7 + j * 3 + (i % 5) * j) % words.length]).join(' '));
}

before(() => {
  mkdirSync(app);
  // `npm pack` runs `prepare`, which builds dist/ from src/.
  packed = (JSON.parse(run('npm', ['pack', '--json', '--pack-destination', app], { cwd: REPO })) as PackResult[])[0];
  writeAppManifest(packed.filename);
  try {
    run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app });
  } catch (e) {
    throw new Error(`installing the tarball offline failed; relora's dependencies must be in the npm cache (run npm ci in the repository first)\n${(e as Error).message}`);
  }
});

after(() => rmSync(work, { recursive: true, force: true }));

test('the tarball holds the built library, its types and the native sources, and no tests, fixtures or tools', () => {
  const files = packed.files.map((f) => f.path);
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'bin/relora.js', 'native/binding.gyp', 'scripts/build-native.mjs', 'README.md']) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  // Every C file the addon's build names (binding.gyp lists them relative to native/).
  const gyp = readFileSync(join(REPO, 'native', 'binding.gyp'), 'utf8');
  const sources = [...gyp.matchAll(/"([\w/.-]+\.c)"/g)].map((m) => `native/${m[1]}`);
  assert.ok(sources.length > 0, 'binding.gyp names its sources');
  assert.deepEqual(sources.filter((f) => !files.includes(f)), [], 'C sources of binding.gyp missing from the tarball');
  const stray = files.filter((f) => /^(test|tools|examples|src)\//.test(f) || f.includes('fixtures') || f.endsWith('.map'));
  assert.deepEqual(stray, []);
});

test('installing the tarball builds the native addon and the relora command', () => {
  const addon = join(app, 'node_modules', 'relora', 'native', 'build', 'Release', 'relora_native.node');
  assert.ok(existsSync(addon), `${addon} was built by the install script`);
  const info = JSON.parse(run(join(app, 'node_modules', '.bin', 'relora'), ['info', '--model', 'llama_9m', '--mode', 'relora', '--json'], { cwd: app }));
  assert.equal(info.params_total, countParameters(namedConfig('llama_9m')), 'the installed CLI counts as the source does');
});

test('a TypeScript program and the examples type-check against the installed package, and run', () => {
  const src = join(app, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'check.ts'), CHECK_PROGRAM);
  for (const f of readdirSync(join(REPO, 'examples')).filter((n) => n.endsWith('.ts'))) copyFileSync(join(REPO, 'examples', f), join(src, f));
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, rootDir: 'src', outDir: 'out',
      typeRoots: [join(REPO, 'node_modules', '@types')], types: ['node'],
    },
    include: ['src'],
  }));
  run(process.execPath, [TSC, '-p', app], { cwd: app });

  const check = JSON.parse(runApp('check.js'));
  assert.equal(check.backend, 'native');
  assert.ok(Number.isFinite(check.loss) && check.loss > 0, `a forward pass gives a finite loss, got ${check.loss}`);
  assert.equal(check.gradAccum, 1);
  assert.equal(check.hidden, true, 'relora/dist/... cannot be imported at run time either');

  // The three examples in a chain: a custom ReLoRA loop saves a Hugging Face folder, which is
  // continued with train() and exported, and the export generates text.
  const docs = corpus();
  writeFileSync(join(work, 'corpus.txt'), docs.join('\n\n'));
  writeFileSync(join(work, 'corpus.jsonl'), docs.map((text) => JSON.stringify({ text })).join('\n'));
  const hf = join(work, 'custom-hf');
  const loop = runApp('train-custom-loop.js', join(work, 'corpus.txt'), hf);
  assert.match(loop, /update 120: training loss [\d.]+, merge 3, validation loss [\d.]+/);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(existsSync(join(hf, f)), `${f} saved`);

  const runDir = join(work, 'continued');
  const continued = runApp('continue-pretraining.js', hf, join(work, 'corpus.jsonl'), runDir);
  assert.match(continued, /merge 3 after update 31/);
  const ppl = Number(/final validation perplexity ([\d.]+)/.exec(continued)?.[1]);
  assert.ok(Number.isFinite(ppl) && ppl > 1, `final perplexity ${ppl}`);
  assert.ok(existsSync(join(runDir, 'hf', 'model.safetensors')));

  const generated = runApp('generate.js', join(runDir, 'hf'), 'the cat');
  assert.ok(generated.startsWith('the cat') && generated.trim().length > 'the cat'.length, `generated: ${generated}`);
});
