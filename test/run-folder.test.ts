/**
 * The run folder in one place (src/train/run-folder.ts): one checkpoint-resolution rule for
 * eval, export and generate, the run's defining files checked against RUN/run-manifest.json, a
 * `latest` that is not a file, a Hugging Face folder given to eval, a metrics append that fails.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { evaluateCheckpoint } from '../src/cli/commands/eval.ts';
import { loadModelSource } from '../src/infer/model-source.ts';
import type { LlamaConfig } from '../src/nn/config.ts';
import { saveCheckpoint } from '../src/train/checkpoint.ts';
import { MetricsWriter } from '../src/train/metrics.ts';
import { resolveConfig } from '../src/train/config.ts';
import { openCheckpoint, readRunConfig, readRunModelConfig, resolveCheckpoint, RUN_FILES, sealRunFiles, verifyRunFiles } from '../src/train/run-folder.ts';
import { bpeTokenizer, fakeRun, interopFixture, randomModel, tempDir } from './interop-helpers.ts';

const shape: LlamaConfig = {
  vocabSize: 420, hiddenSize: 32, intermediateSize: 48, numHeads: 4, numKVHeads: 2, numLayers: 2,
  maxSeqLen: 32, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true,
};
const runConfig = { model: { hidden_size: 32, intermediate_size: 48, num_heads: 4, num_layers: 2 }, seq_len: 32 };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  delete process.env.RELORA_TEST_FAIL;
});

/** A run folder with checkpoints at steps 7 and 8 (weights differ), sealed like a training run's. */
async function sealedRun(tag: string): Promise<{ run: string; older: string; newer: string }> {
  const { dir, cleanup } = tempDir(tag);
  cleanups.push(cleanup);
  const tokenizer = await bpeTokenizer();
  const older = await fakeRun(dir, randomModel(shape, 1), tokenizer, runConfig, { modelJson: true });
  const model = randomModel(shape, 2);
  const state = JSON.parse(readFileSync(join(older, 'state.json'), 'utf8'));
  const newer = await saveCheckpoint(dir, { model: model.stateDict(), optimizer: {}, state: { ...state, step: 8 } }, 2);
  writeFileSync(join(dir, RUN_FILES.rankBase), 'stand-in for W at the warm start');
  await sealRunFiles(dir);
  return { run: dir, older, newer };
}

test('a run folder means its newest valid checkpoint for export/generate as for eval and --resume: a damaged newer one is passed over with a warning', async () => {
  const { run, older, newer } = await sealedRun('rf-fallback');
  truncateSync(join(newer, 'model.safetensors'), 64);
  const warnings: string[] = [];
  const src = await loadModelSource(run, { warn: (m) => warnings.push(m) });
  assert.equal(src.dir, older);
  assert.match(warnings.join('\n'), /step-000008\/model\.safetensors has 64 bytes.*falling back to an older checkpoint/);
  assert.match(warnings.join('\n'), /using .*step-000007: step-000008 failed verification/);
  src.model.dispose();
  // Named explicitly, a damaged checkpoint is refused, not replaced by another.
  await assert.rejects(loadModelSource(newer), /step-000008\/model\.safetensors has 64 bytes, its manifest says \d+ \(truncated or corrupted\)/);
});

test('`latest` that is a folder is reported and ignored, never a bare EISDIR', async () => {
  const { run, newer } = await sealedRun('rf-latest-dir');
  rmSync(join(run, RUN_FILES.latest));
  mkdirSync(join(run, RUN_FILES.latest));
  const warnings: string[] = [];
  assert.equal(resolveCheckpoint(run, (m) => warnings.push(m)).checkpointDir, newer);
  assert.match(warnings.join('\n'), /latest is not a file \(it should hold the name of the newest checkpoint\): ignoring it/);
});

test('each edited or deleted file that defines the run is named on eval/export/generate, with what to do', async () => {
  const edits: [string, (run: string) => void, RegExp][] = [
    ['tokenizer.json', (r) => appendFileSync(join(r, 'tokenizer.json'), ' '), /run file .*tokenizer\.json has changed since the run wrote it/],
    ['model.json rmsNormEps', (r) => {
      const p = join(r, 'model.json');
      writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), rmsNormEps: 1e-5 }));
    }, /run file .*model\.json has changed since the run wrote it \((\d+ bytes, recorded \d+|its SHA-256 differs)\)/],
    ['config.json lr', (r) => {
      const p = join(r, 'config.json');
      writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), lr: 0.5 }));
    }, /run file .*config\.json has changed since the run wrote it/],
    ['deleted rank base', (r) => rmSync(join(r, RUN_FILES.rankBase)), /run file .*rank_base\.safetensors is missing; a run must be resumed, evaluated and exported with the files it was trained with/],
  ];
  for (const [what, edit, message] of edits) {
    const { run, newer } = await sealedRun(`rf-edit-${what.split(' ')[0]}`);
    verifyRunFiles(run);
    edit(run);
    assert.throws(() => verifyRunFiles(run), message, what);
    for (const path of [run, newer]) await assert.rejects(loadModelSource(path), message, `${what}: ${path}`);
    await assert.rejects(evaluateCheckpoint(run, {}, () => {}), message, `${what}: eval`);
  }
});

test('sealing records each defining file once: a file written later is added, an edited one is not re-recorded', async () => {
  const { run } = await sealedRun('rf-seal');
  const manifest = () => JSON.parse(readFileSync(join(run, RUN_FILES.manifest), 'utf8')) as { files: { file: string }[] };
  assert.deepEqual(manifest().files.map((f) => f.file).sort(), ['config.json', 'model.json', 'rank_base.safetensors', 'tokenizer.json']);
  writeFileSync(join(run, RUN_FILES.tokenizerConfig), '{"eos_token": "</s>"}');
  appendFileSync(join(run, 'model.json'), '\n');
  await sealRunFiles(run);
  assert.deepEqual(manifest().files.map((f) => f.file).sort(), ['config.json', 'model.json', 'rank_base.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.throws(() => verifyRunFiles(run), /model\.json has changed/);
  // The Hugging Face metadata an imported model's export carries over is covered too.
  mkdirSync(join(run, RUN_FILES.hfSource));
  writeFileSync(join(run, RUN_FILES.hfSource, 'config.json'), '{"bos_token_id": 1}');
  writeFileSync(join(run, 'model.json'), readFileSync(join(run, 'model.json'), 'utf8').trimEnd()); // undo the edit above
  verifyRunFiles(run);
  await sealRunFiles(run);
  writeFileSync(join(run, RUN_FILES.hfSource, 'config.json'), '{"bos_token_id": 2}');
  assert.throws(() => verifyRunFiles(run), /run file .*hf_source\/config\.json has changed since the run wrote it/);
  writeFileSync(join(run, RUN_FILES.manifest), '{"files": 3}');
  assert.throws(() => verifyRunFiles(run), /run-manifest\.json: not a run manifest \("version": .*"files": /);
  const outside = { file: '../elsewhere.json', bytes: 2, sha256: '0'.repeat(64) };
  writeFileSync(join(run, RUN_FILES.manifest), JSON.stringify({ version: 1, files: [outside] }));
  assert.throws(() => verifyRunFiles(run), /run-manifest\.json: lists "\.\.\/elsewhere\.json", which is not one of the files that define a run/);
});

test('eval on a Hugging Face folder says what the folder is and what to pass', async () => {
  const hf = interopFixture('tied');
  await assert.rejects(evaluateCheckpoint(hf, {}, () => {}), (e: Error) => {
    assert.match(e.message, /is a Hugging Face model folder, not a relora run; eval takes a run folder \(RUN\) or one of its checkpoints \(RUN\/checkpoints\/step-N\)/);
    assert.match(e.message, /relora train --init-from/);
    assert.doesNotMatch(e.message, /resume/);
    return true;
  });
  assert.throws(() => openCheckpoint(join(hf, 'config.json'), () => null, () => {}), /is a file; expected a run folder or a checkpoint folder/);
});

test('the model shape of a run comes from model.json, else from config.json with the tokenizer vocabulary', async () => {
  const { run } = await sealedRun('rf-shape');
  assert.equal(readRunModelConfig(run).numKVHeads, 2);
  rmSync(join(run, 'model.json'));
  assert.equal(readRunModelConfig(run, 420).numKVHeads, 4);
  assert.throws(() => readRunModelConfig(run), /config\.json: cannot derive the model shape, and .*model\.json is missing \(it names no vocab_size and no tokenizer was given\)/);
});

test('a failed metrics append names the file; a full disk says so and how to go on', () => {
  const { dir, cleanup } = tempDir('rf-metrics');
  cleanups.push(cleanup);
  const record = { type: 'restart', step: 1, merges: 1, resets: 1 } as const;
  process.env.RELORA_TEST_FAIL = 'metrics:ENOSPC';
  const path = join(dir, 'metrics.jsonl');
  assert.throws(() => new MetricsWriter(path).write(record), new RegExp(`cannot append to ${path}: the disk is full \\(ENOSPC\\); free some space, then continue the run with --resume`));
  delete process.env.RELORA_TEST_FAIL;
  assert.throws(() => new MetricsWriter(join(dir, 'gone', 'metrics.jsonl')).write(record), /cannot append to .*gone\/metrics\.jsonl: ENOENT/);
});

test('the config a run saved reads back in every mode (a resolved config holds defaults of keys its mode may not name)', () => {
  const { dir, cleanup } = tempDir('rf-config');
  cleanups.push(cleanup);
  for (const mode of ['full', 'lora', 'relora'] as const) {
    const saved = resolveConfig({ mode, steps: 40, cycle_length: 10, warmup_steps: 2, restart_warmup_steps: 2, ...(mode === 'full' ? {} : { warm_start_steps: 10 }) }, 'test');
    const run = join(dir, mode);
    mkdirSync(run);
    writeFileSync(join(run, 'config.json'), JSON.stringify(saved, null, 2));
    assert.deepEqual(readRunConfig(run), saved, mode);
  }
});

test('a run saved before warm_start_schedule existed resumes with the schedule it was started with (phase)', () => {
  const { dir, cleanup } = tempDir('rf-config-old');
  cleanups.push(cleanup);
  const saved = resolveConfig({ mode: 'relora', steps: 40, cycle_length: 10, warmup_steps: 2, restart_warmup_steps: 2, warm_start_steps: 10 }, 'test');
  assert.equal(saved.warm_start_schedule, 'run');
  const { warm_start_schedule: _new, ...older } = saved;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(older, null, 2));
  assert.deepEqual(readRunConfig(dir), { ...saved, warm_start_schedule: 'phase' });
});
