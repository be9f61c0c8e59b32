/**
 * Property-based: random and malformed inputs fed to the public entry points — configs
 * (resolveConfig, the train command's flags and config files), JSONL and text files (through
 * fileCorpus and a tokenizer), safetensors headers and checkpoint manifests — end in success or
 * in a clear Error: a plain Error or one of relora's own error classes, with a message, naming
 * the file where there is one. Never a TypeError / RangeError / SyntaxError escaping from deep
 * inside, a crash or a hang (each test has a time limit).
 *
 * fast-check's seed is printed on failure; replay with RELORA_FC_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { Command, CommanderError } from 'commander';
import fc from 'fast-check';
import { UsageError } from '../src/cli/errors.ts';
import { addConfigOptions, resolveTrainConfig } from '../src/cli/commands/train.ts';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import type { ByteLevelBpe } from '../src/data/bpe.ts';
import { fileCorpus } from '../src/data/corpus.ts';
import { parseSafetensors, readSafetensorsHeader, SafetensorsFile } from '../src/io/safetensors.ts';
import { loadCheckpoint, saveCheckpoint, type TrainState } from '../src/train/checkpoint.ts';
import { CONFIG_KEYS, ConfigError, resolveConfig } from '../src/train/config.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { tempDir } from './fixtures/reliability/harness.ts';

const fcParams = { numRuns: Number(process.env.RELORA_FC_RUNS ?? 300), ...(process.env.RELORA_FC_SEED ? { seed: Number(process.env.RELORA_FC_SEED) } : {}) };
const LIMIT = { timeout: 30_000 };
const work = tempDir('inputs');

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const BUILTIN_ERRORS = [TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError];

/** A clear error: an Error that is not one of JavaScript's built-in failure types, with a message (naming `mustName` if given). */
function assertClear(e: unknown, what: string, mustName?: string): void {
  assert.ok(e instanceof Error, `${what}: threw a non-Error ${String(e)}`);
  assert.ok(!BUILTIN_ERRORS.some((T) => e.constructor === T), `${what}: an unhandled ${e.constructor.name} escaped: ${e.message}\n${e.stack}`);
  assert.ok(e.message.trim().length > 0, `${what}: empty message`);
  if (mustName) assert.ok(e.message.includes(mustName), `${what}: the message does not name ${mustName}: ${e.message}`);
}

/** Outcomes per kind of input, to show that each property saw both successes and errors. */
const seen = new Map<string, { ok: number; error: number }>();

async function outcome(what: string, f: () => unknown, mustName?: string): Promise<'ok' | 'error'> {
  const kind = what.split(' ')[0]!;
  const counts = seen.get(kind) ?? { ok: 0, error: 0 };
  seen.set(kind, counts);
  try {
    await f();
    counts.ok++;
    return 'ok';
  } catch (e) {
    assertClear(e, what, mustName);
    counts.error++;
    return 'error';
  }
}

/** Both outcomes occurred for `kind`: the property was not checked on errors (or successes) alone. */
function assertBothOutcomes(kind: string): void {
  const c = seen.get(kind);
  assert.ok(c && c.ok > 0 && c.error > 0, `${kind}: expected both successes and errors among the random inputs, got ${JSON.stringify(c)}`);
}

// ---------------------------------------------------------------- configs

const KEY_NAMES = [...CONFIG_KEYS, 'lr_rate', 'warmup', 'step', 'Model', 'seq-len', '__proto__', 'constructor', 'toString', ''];

/** Values of every kind, biased towards the ones that break code: NaN, ±Infinity, -0, huge, empty, nested. */
const wildValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, 1, -1, 2 ** 53, 1e308, 0.5, '', ' ', 'relora', 'cosine', 'random:0.5', 'magnitude:1', 'reset', null, true, false, [], {}),
  fc.integer({ min: -5, max: 5000 }),
  fc.double(),
  fc.string(),
  fc.array(fc.oneof(fc.string(), fc.integer())),
  fc.record({ hidden_size: fc.integer({ min: -2, max: 64 }), intermediate_size: fc.integer({ min: -2, max: 64 }), num_heads: fc.integer({ min: -1, max: 8 }), num_layers: fc.integer({ min: -1, max: 3 }) }, { requiredKeys: [] }),
  fc.anything(),
);

const wildConfig = fc.oneof(
  fc.dictionary(fc.constantFrom(...KEY_NAMES), wildValue, { maxKeys: 12 }),
  fc.anything(),
);

describe('configs', () => {
  test('resolveConfig: a resolved config or a ConfigError listing the problems', LIMIT, async () => {
    let ok = 0;
    await fc.assert(fc.asyncProperty(wildConfig, async (raw) => {
      try {
        const c = resolveConfig(raw, 'fuzz');
        ok++;
        // What the trainer relies on, whatever the input.
        assert.ok(Number.isInteger(c.steps) && c.steps >= 1);
        assert.ok(Number.isInteger(c.grad_accum) && c.grad_accum >= 1);
        assert.ok(c.warm_start_steps < c.steps);
        assert.ok(c.lr > 0 && Number.isFinite(c.lr));
      } catch (e) {
        assertClear(e, `resolveConfig(${JSON.stringify(raw)})`);
        assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${(e as Error).constructor.name}: ${(e as Error).message}`);
      }
    }), fcParams);
    assert.ok(ok > 0, 'some random configs are valid (the property is not vacuous)');
  });

  /** The train command's options, parsed by commander exactly as `relora train` parses them. */
  function parseTrainFlags(argv: string[]): Record<string, unknown> {
    const cmd = addConfigOptions(new Command('train').option('--config <file>').option('--resume <dir>').option('--force').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} }));
    cmd.parse(argv, { from: 'user' });
    return cmd.opts();
  }

  const flagName = fc.constantFrom(...CONFIG_KEYS.map((k) => `--${k.replace(/_/g, '-')}`), '--modle', '--lr-rate', '--', '-x', '--force');
  const flagText = fc.oneof(fc.constantFrom('1', '0', '-1', '1e-3', 'NaN', 'Infinity', '', 'true', '{', '{"hidden_size":32}', '[1,2]', 'full', 'relora', 'q_proj,v_proj', ',,', 'llama_9m', '1_000'), fc.string());

  test('train flags: a resolved config, or a UsageError / commander error naming the problem', LIMIT, async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(flagName, flagText), { maxLength: 8 }), async (pairs) => {
      const argv = pairs.flatMap(([f, v]) => [f, v]);
      await outcome(`flags ${JSON.stringify(argv)}`, () => {
        let opts: Record<string, unknown>;
        try {
          opts = parseTrainFlags(argv);
        } catch (e) {
          if (e instanceof CommanderError) return;
          throw e;
        }
        try {
          resolveTrainConfig(opts, 'flags');
        } catch (e) {
          assert.ok(e instanceof UsageError, `expected a UsageError, got ${(e as Error).constructor.name}: ${(e as Error).message}`);
          throw e;
        }
      });
    }), fcParams);
    assertBothOutcomes('flags');
  });

  test('config files (YAML and JSON, any bytes): a resolved config or a UsageError naming the file', LIMIT, async () => {
    const content = fc.oneof(
      fc.string(),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
      wildConfig.map((c) => { try { return JSON.stringify(c) ?? ''; } catch { return '{'; } }),
      fc.constantFrom('', '---', '- 1\n- 2', 'lr: [', 'model: {hidden_size: 32', 'a: &x 1\nb: *y', '{"lr": 1e400}', 'null', '42', '"text"'),
    );
    let n = 0;
    await fc.assert(fc.asyncProperty(content, fc.constantFrom('yaml', 'json'), async (text, ext) => {
      const path = join(work, `config-${n++}.${ext}`);
      writeFileSync(path, text);
      await outcome(`config file ${JSON.stringify(text)}`, () => {
        try {
          resolveTrainConfig({ config: path }, path);
        } catch (e) {
          assert.ok(e instanceof UsageError, `expected a UsageError, got ${(e as Error).constructor.name}: ${(e as Error).message}`);
          throw e;
        }
      }, path);
    }), fcParams);
    assertBothOutcomes('config');
  });
});

// ---------------------------------------------------------------- data files

describe('data files', () => {
  let tokenizer: ByteLevelBpe;
  before(async () => {
    async function* docs() { yield 'the cat sat on the mat; ünïcödé, 数字 and emoji 🙂 too'; }
    tokenizer = await trainByteLevelBpe(docs(), { vocabSize: 300 });
  });

  /** Reads every document and tokenises it; the round trip must hold for whatever text came out. */
  async function readAll(path: string): Promise<void> {
    const corpus = await fileCorpus([path]);
    for await (const doc of corpus.documents()) {
      const ids = tokenizer.encode(doc);
      // A lone surrogate (legal in JSON text) has no UTF-8 form; it is encoded as U+FFFD.
      if (!LONE_SURROGATE.test(doc)) assert.equal(tokenizer.decode(ids), doc, 'the tokenizer round-trips the document');
    }
  }

  const jsonlLine = fc.oneof(
    fc.record({ text: fc.string() }).map((r) => JSON.stringify(r)),
    fc.record({ text: fc.string({ unit: 'binary' }) }).map((r) => JSON.stringify(r)),
    fc.record({ txt: fc.string() }).map((r) => JSON.stringify(r)),
    fc.record({ text: wildValue }).map((r) => { try { return JSON.stringify(r); } catch { return '{'; } }),
    fc.constantFrom('', '   ', '{', '[]', 'null', '"text"', '{"text": "a"', '{"text": "\\ud800"}', '{"__proto__": {"text": "x"}}'),
    fc.string(),
  );
  const bytes = fc.uint8Array({ maxLength: 300 });

  test('JSONL: documents, or an Error naming the file', LIMIT, async () => {
    let n = 0;
    const file = fc.oneof(
      fc.array(jsonlLine, { maxLength: 6 }).map((ls) => Buffer.from(ls.join('\n'))),
      bytes.map((b) => Buffer.from(b)),
      fc.tuple(fc.array(jsonlLine, { maxLength: 3 }), bytes).map(([ls, b]) => Buffer.concat([Buffer.from(`${ls.join('\n')}\n`), Buffer.from(b)])),
    );
    await fc.assert(fc.asyncProperty(file, async (content) => {
      const path = join(work, `data-${n++}.jsonl`);
      writeFileSync(path, content);
      await outcome(`jsonl ${JSON.stringify(content.toString('latin1'))}`, () => readAll(path), path);
    }), fcParams);
    assertBothOutcomes('jsonl');
  });

  test('text: documents, or an Error naming the file (invalid UTF-8 included)', LIMIT, async () => {
    let n = 0;
    const file = fc.oneof(fc.string({ unit: 'binary' }).map((s) => Buffer.from(s)), bytes.map((b) => Buffer.from(b)));
    await fc.assert(fc.asyncProperty(file, async (content) => {
      const path = join(work, `data-${n++}.txt`);
      writeFileSync(path, content);
      await outcome(`txt ${JSON.stringify(content.toString('latin1'))}`, () => readAll(path), path);
    }), fcParams);
    assertBothOutcomes('txt');
  });
});

// ---------------------------------------------------------------- safetensors and checkpoints

const DTYPES = ['F32', 'F16', 'BF16', 'F64', 'I32', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'X9', '', 'f32'];

const tensorEntry = fc.record({
  dtype: fc.oneof(fc.constantFrom(...DTYPES), wildValue),
  shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 3 }), fc.array(fc.constantFrom(2 ** 31, 2 ** 53, 1.5, NaN), { maxLength: 2 }), wildValue),
  data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -4, max: 300 }), fc.integer({ min: -4, max: 300 })), wildValue),
}, { requiredKeys: [] });

const header = fc.oneof(
  fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__metadata__', '__proto__')), fc.oneof(tensorEntry, wildValue), { maxKeys: 4 }).map((h) => JSON.stringify(h)),
  fc.string(),
  fc.constantFrom('{}', '', '[]', 'null', '{"a":', '{"__metadata__": {"k": 1}}', '{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'),
);

const LAYOUT_DTYPES = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, U8: 1 } as const;

/** A well-formed file (tensors laid out back to back), then at most one of a few corruptions. */
const nearlyValidSafetensors = fc.tuple(
  fc.array(fc.tuple(fc.constantFrom(...(Object.keys(LAYOUT_DTYPES) as (keyof typeof LAYOUT_DTYPES)[])), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })), { minLength: 1, maxLength: 4 }),
  fc.constantFrom('none', 'dtype', 'shape', 'offset', 'truncate', 'extra', 'length'),
  fc.integer({ min: -3, max: 3 }),
).map(([tensors, corruption, delta]) => {
  const h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }> = {};
  let offset = 0;
  tensors.forEach(([dtype, shape], i) => {
    const bytes = shape.reduce((a, b) => a * b, 1) * LAYOUT_DTYPES[dtype];
    h[`t${i}`] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  });
  const first = h.t0!;
  if (corruption === 'dtype') first.dtype = delta > 0 ? 'F8' : 'I16';
  if (corruption === 'shape') first.shape = [...first.shape, delta];
  if (corruption === 'offset') first.data_offsets = [first.data_offsets[0]!, first.data_offsets[1]! + delta];
  const hb = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Math.max(0, hb.length + (corruption === 'length' ? delta : 0))));
  const data = Buffer.alloc(Math.max(0, offset + (corruption === 'truncate' ? -1 : corruption === 'extra' ? 4 : 0)), 0x3f);
  return Buffer.concat([len, hb, data]);
});

/** 8-byte little-endian header length (usually right, sometimes not), the header, then data. */
const safetensorsBytes = fc.tuple(header, fc.uint8Array({ maxLength: 64 }), fc.oneof(fc.constant(null), fc.constantFrom(0, 1, 7, 2 ** 32, 2 ** 53), fc.nat())).map(([h, data, lengthField]) => {
  const hb = Buffer.from(h);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(lengthField ?? hb.length));
  return Buffer.concat([len, hb, Buffer.from(data)]);
});

describe('safetensors and checkpoints', () => {
  test('safetensors headers: tensors, or an Error naming the file', LIMIT, async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(fc.oneof(nearlyValidSafetensors, safetensorsBytes, fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b))), async (buf) => {
      const name = `fuzz-${n}.safetensors`;
      const path = join(work, name);
      n++;
      await outcome(`safetensors ${buf.toString('latin1')}`, () => {
        const st = parseSafetensors(buf, name);
        for (const t of st.names()) {
          // Each tensor: readable as float32, or an Error saying why not.
          try {
            st.readFloat32(t);
          } catch (e) {
            assertClear(e, `readFloat32(${t})`, name);
          }
        }
      }, name);
      writeFileSync(path, buf);
      await outcome(`safetensors file ${buf.toString('latin1')}`, () => readSafetensorsHeader(path), path);
      await outcome(`safetensors file ${buf.toString('latin1')}`, async () => {
        const f = await SafetensorsFile.open(path);
        try {
          for (const t of f.names()) f.readFloat32(t);
        } finally {
          await f.close();
        }
      }, path);
    }), fcParams);
    assertBothOutcomes('safetensors');
  });

  test('checkpoint manifests and state files: loaded, or an Error naming the file', LIMIT, async () => {
    const good = join(work, 'ckpt-good');
    const state: TrainState = {
      version: 1, step: 1, phase: 'full', phase_step: 1, optimizer_steps: 1, counters: { merges: 0, resets: 0 }, tokens: 1, elapsed: 0, skipped: 0,
      sampler: { epoch: 0, position: 1 }, rng: {},
    };
    await saveCheckpoint(good, { model: { w: Tensor.from(new Float32Array([1, 2, 3]), [3]) }, optimizer: {}, state }, 1);
    const goodDir = join(good, 'checkpoints', 'step-000001');
    const manifest = JSON.parse(readFileSync(join(goodDir, 'manifest.json'), 'utf8')) as { files: { file: string; bytes: number; sha256: string }[] };
    const mutatedManifest = fc.oneof(
      // Valid: the same entries in any order (the rest of the variants are mostly damaged).
      fc.shuffledSubarray(manifest.files, { minLength: manifest.files.length }).map((files) => JSON.stringify({ ...manifest, files })),
      wildConfig.map((c) => { try { return JSON.stringify(c) ?? ''; } catch { return ''; } }),
      fc.record({ files: fc.array(fc.oneof(fc.constantFrom(...manifest.files), fc.record({ file: wildValue, bytes: wildValue, sha256: wildValue }, { requiredKeys: [] }), wildValue), { maxLength: 4 }) }).map((m) => { try { return JSON.stringify(m); } catch { return '{'; } }),
      fc.string(),
    );
    let n = 0;
    await fc.assert(fc.asyncProperty(mutatedManifest, async (text) => {
      const dir = join(work, `ckpt-${n++}`);
      mkdirSync(dir);
      cpSync(goodDir, dir, { recursive: true });
      writeFileSync(join(dir, 'manifest.json'), text);
      await outcome(`manifest ${text}`, () => loadCheckpoint(dir), dir);
    }), { ...fcParams, numRuns: 100 });
    assertBothOutcomes('manifest');
  });
});
