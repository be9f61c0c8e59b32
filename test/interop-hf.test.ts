/**
 * Hugging Face interop without Python: models saved by transformers (committed fixtures made by
 * tools/reference/interop_fixtures.py) import with transformers' logits and greedy ids, and
 * relora's exports import back to the same model.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setBackend } from '../src/engine/backend.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { generate } from '../src/infer/generate.ts';
import { loadModelSource, mergedCopy } from '../src/infer/model-source.ts';
import { exportHFModel } from '../src/io/hf-export.ts';
import { loadHFModel } from '../src/io/hf-model.ts';
import { parseSafetensors, readSafetensorsHeader } from '../src/io/safetensors.ts';
import type { LlamaConfig } from '../src/nn/config.ts';
import { DEFAULT_LORA, loraStreams, wrapWithLora } from '../src/relora/wrap.ts';
import { bpeTokenizer, fakeRun, interopFixture, logitsOf, maxAbsDiff, randomIds, randomModel, tempDir } from './interop-helpers.ts';

setBackend('js');

const REPO = fileURLToPath(new URL('..', import.meta.url));

for (const kind of ['gqa', 'tied']) {
  test(`a ${kind} model saved by transformers imports with its logits (1e-4) and its greedy generation`, async () => {
    const dir = interopFixture(kind);
    const { model, hfConfig, tokenizer } = await loadHFModel(dir);
    assert.equal(tokenizer, null, 'the fixture has no tokenizer.json');
    if (kind === 'gqa') assert.ok(hfConfig.num_key_value_heads < hfConfig.num_attention_heads);
    else assert.equal(model.config.tieWordEmbeddings, true);
    const expected = parseSafetensors(readFileSync(join(dir, 'expected.safetensors')), 'expected.safetensors');
    const ids = expected.readInt32('input_ids');
    const logits = logitsOf(model, Tensor.from(ids, expected.info('input_ids').shape));
    const diff = maxAbsDiff(logits, expected.readFloat32('logits'));
    assert.ok(diff <= 1e-4, `logits differ from transformers by ${diff}`);
    const greedy = generate(model, [...expected.readInt32('prompt')], { maxNewTokens: 20, temperature: 0 });
    assert.deepEqual(greedy, [...expected.readInt32('greedy')]);
    model.dispose();
  });
}

test('the tied fixture is what it should exercise: bfloat16 shards behind an index, no lm_head tensor', async () => {
  const dir = interopFixture('tied');
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const shards = [...new Set(Object.values(index.weight_map))];
  assert.ok(shards.length >= 2);
  for (const s of shards) {
    const h = await readSafetensorsHeader(join(dir, s));
    assert.ok(h.tensors.every((t) => t.dtype === 'BF16'));
  }
  assert.ok(!('lm_head.weight' in index.weight_map));
});

const small: LlamaConfig = {
  vocabSize: 420, hiddenSize: 32, intermediateSize: 48, numHeads: 4, numKVHeads: 2, numLayers: 2,
  maxSeqLen: 32, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true,
};

/** A GQA + tied model wrapped with LoRA whose B factors are nonzero, as after some training. */
function trainedLookingModel() {
  const model = randomModel(small, 21, 0.1);
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 8, dropout: 0 }, loraStreams(2));
  const rng = new RandomStream(9);
  for (const l of layers.values()) rng.normal(l.loraB.data, 0, 0.1);
  return model.eval();
}

test('export → import round trip: merged LoRA, GQA, tied embeddings and the tokenizer come back equal', async () => {
  const { dir, cleanup } = tempDir('export');
  try {
    const model = trainedLookingModel();
    const tokenizer = await bpeTokenizer();
    const ids = randomIds(2, 9, small.vocabSize, 3);
    const reference = logitsOf(model, ids);
    const merged = mergedCopy(model);
    assert.ok(maxAbsDiff(logitsOf(merged, ids), reference) < 1e-5, 'merging the LoRA factors keeps the function');
    const out = join(dir, 'hf');
    const files = await exportHFModel(merged, out, { tokenizer });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      assert.ok(files.includes(join(out, f)) && existsSync(join(out, f)), f);
    }
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.tie_word_embeddings, true);
    assert.equal(cfg.num_key_value_heads, 2);
    assert.equal(cfg.torch_dtype, 'float32');
    assert.equal(cfg.eos_token_id, tokenizer.eosId);
    const header = await readSafetensorsHeader(join(out, 'model.safetensors'));
    const names = header.tensors.map((t) => t.name);
    assert.ok(!names.includes('lm_head.weight'), 'tied: no lm_head tensor');
    assert.ok(!names.some((n) => n.includes('lora')), 'LoRA factors are merged, not written');
    assert.equal(header.metadata?.format, 'pt');
    const tc = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(tc.eos_token, '<|endoftext|>');

    const back = await loadHFModel(out);
    assert.equal(maxAbsDiff(logitsOf(back.model, ids), logitsOf(merged, ids)), 0, 'float32 export is exact');
    const text = 'héllo wörld 👋  \n\n  end';
    assert.deepEqual(back.tokenizer!.encode(text), tokenizer.encode(text));
    assert.equal(back.tokenizer!.eosId, tokenizer.eosId);
    await assert.rejects(exportHFModel(merged, out, { tokenizer }), /already exists and is not empty/);
    await exportHFModel(merged, out, { tokenizer, overwrite: true });
    await assert.rejects(exportHFModel(model, join(dir, 'unmerged')), /LoRA factor; merge the LoRA layers/);
    assert.ok(!existsSync(join(dir, 'unmerged')), 'a failed export leaves nothing behind');
  } finally {
    cleanup();
  }
});

for (const [dtype, tol] of [['float16', 2 ** -11], ['bfloat16', 2 ** -8]] as const) {
  test(`export as ${dtype}: weights round to nearest and import back as float32`, async () => {
    const { dir, cleanup } = tempDir('export16');
    try {
      const model = randomModel(small, 4, 0.1);
      await exportHFModel(model, dir, { dtype });
      const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
      assert.ok(header.tensors.every((t) => t.dtype === (dtype === 'float16' ? 'F16' : 'BF16')));
      assert.equal((JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>).torch_dtype, dtype);
      const back = await loadHFModel(dir);
      const own = new Map(model.namedParameters());
      for (const [name, t] of back.model.namedParameters()) {
        const src = own.get(name)!.data;
        for (let i = 0; i < src.length; i++) {
          assert.ok(Math.abs(t.data[i] - src[i]) <= tol * Math.abs(src[i]) + 1e-7, `${name}[${i}]: ${src[i]} became ${t.data[i]}`);
        }
      }
    } finally {
      cleanup();
    }
  });
}

test('a run folder exports its latest checkpoint with the LoRA factors merged (model.json or config.json shape)', async () => {
  const { dir, cleanup } = tempDir('run');
  try {
    const model = trainedLookingModel();
    const tokenizer = await bpeTokenizer();
    const ids = randomIds(1, 11, small.vocabSize, 5);
    const reference = logitsOf(model, ids);
    const ckpt = await fakeRun(dir, model, tokenizer, { model: { hidden_size: 32, intermediate_size: 48, num_heads: 4, num_layers: 2 }, alpha: 8, rank: 4, seq_len: 32 }, { modelJson: true });
    for (const path of [dir, ckpt]) {
      const src = await loadModelSource(path);
      assert.equal(src.kind, 'checkpoint');
      assert.equal(src.dir, ckpt);
      const diff = maxAbsDiff(logitsOf(src.model, ids), reference);
      assert.ok(diff < 1e-5, `checkpoint model differs from the trained one by ${diff}`);
      assert.deepEqual(src.eosIds, [tokenizer.eosId]);
    }

    // An older run with no model.json: the shape comes from config.json (spec-shaped model).
    const { dir: dir2, cleanup: cleanup2 } = tempDir('run-old');
    try {
      const plainCfg: LlamaConfig = { ...small, numKVHeads: undefined, tieWordEmbeddings: undefined, maxSeqLen: 16 };
      const plain = randomModel(plainCfg, 8, 0.1);
      await fakeRun(dir2, plain, tokenizer, {
        model: { hidden_size: 32, intermediate_size: 48, num_heads: 4, num_layers: 2 }, vocab_size: 420, seq_len: 16, alpha: 32,
      });
      const src = await loadModelSource(dir2);
      assert.equal(src.model.config.numKVHeads, 4);
      assert.equal(src.model.config.maxSeqLen, 16);
      const short = randomIds(1, 8, 420, 1);
      assert.equal(maxAbsDiff(logitsOf(src.model, short), logitsOf(plain, short)), 0);
    } finally {
      cleanup2();
    }
  } finally {
    cleanup();
  }
});

/** Runs one of our commands in a fresh process, as `relora <args>` would. */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const program = `
    import { Command } from 'commander';
    import * as exportCmd from './src/cli/commands/export.ts';
    import * as generateCmd from './src/cli/commands/generate.ts';
    import { fail } from './src/cli/errors.ts';
    const p = new Command('relora');
    exportCmd.register(p);
    generateCmd.register(p);
    p.parseAsync(JSON.parse(process.argv[1]), { from: 'user' }).catch(fail);
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program, JSON.stringify(args)], {
    cwd: REPO, encoding: 'utf8', env: { ...process.env, RELORA_BACKEND: 'js' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('relora export and relora generate from the command line', async () => {
  const { dir, cleanup } = tempDir('cli');
  try {
    const model = trainedLookingModel();
    const tokenizer = await bpeTokenizer();
    await fakeRun(join(dir), model, tokenizer, { model: { hidden_size: 32, intermediate_size: 48, num_heads: 4, num_layers: 2 }, alpha: 8, rank: 4, seq_len: 32 }, { modelJson: true });
    const out = join(dir, 'exported');
    const ex = cli(['export', dir, out, '--dtype', 'float32']);
    assert.equal(ex.status, 0, ex.stderr);
    assert.match(ex.stdout, /exported .* -> .*exported/);
    const back = await loadHFModel(out);
    const ids = randomIds(1, 6, small.vocabSize, 12);
    assert.ok(maxAbsDiff(logitsOf(back.model, ids), logitsOf(model, ids)) < 1e-5);

    const prompt = 'The quick';
    const gen = cli(['generate', out, '--prompt', prompt, '--temperature', '0', '--max-new-tokens', '12', '--no-stop-at-eos']);
    assert.equal(gen.status, 0, gen.stderr);
    const expectedIds = generate(back.model, tokenizer.encode(prompt), { maxNewTokens: 12, temperature: 0 });
    assert.equal(gen.stdout, `${prompt}${tokenizer.decode(expectedIds)}\n`);
    assert.match(gen.stderr, /12 tokens from a \d+-token prompt/);

    const bad = cli(['export', dir, out, '--dtype', 'float8']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--dtype: unknown value "float8"; expected one of float32, float16, bfloat16/);
    const notModel = cli(['generate', join(dir, 'nowhere'), '--prompt', 'x']);
    assert.equal(notModel.status, 2);
    assert.match(notModel.stderr, /nowhere: no such file or folder/);
    const noTok = cli(['generate', interopFixture('gqa'), '--prompt', 'x']);
    assert.match(noTok.stderr, /has no tokenizer.json, so a text prompt cannot be encoded/);
  } finally {
    cleanup();
  }
});
