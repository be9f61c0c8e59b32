/**
 * The public API (src/index.ts) as a library user calls it: documented exports, the ReLoRA
 * building blocks in a loop of one's own, Hugging Face loading and saving, and `train` with its
 * callbacks, config validation and the run it leaves behind.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import {
  AdamW, ConfigError, exportHf, generateText, LlamaForCausalLM, loadCheckpoint, loadRun, mergeAndReinit, noGrad, scope, setBackend,
  Tensor, Tokenizer, train, trainStep, wrapWithReLoRA, writeReport, type LlamaConfig, type TrainHooks,
} from '../src/index.ts';
import { interopFixture, tempDir } from './interop-helpers.ts';

setBackend('js');

const TINY: LlamaConfig = { vocabSize: 300, hiddenSize: 16, intermediateSize: 32, numHeads: 2, numLayers: 2, maxSeqLen: 16, rmsNormEps: 1e-6, ropeTheta: 10000 };

const ids = (seed: number, B = 2, T = 16, V = 300): Tensor =>
  Tensor.from(Int32Array.from({ length: B * T }, (_, i) => (i * 7 + seed * 13 + ((i * i) % 11)) % V), [B, T]);
const logits = (model: LlamaForCausalLM, x: Tensor): Float32Array =>
  noGrad(() => scope(() => Float32Array.from(model.eval().forward(x).data)));
const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('every export of src/index.ts carries a doc comment', () => {
  const file = new URL('../src/index.ts', import.meta.url).pathname;
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const undocumented = source.statements
    .filter((s) => ts.isExportDeclaration(s))
    .filter((s) => !(ts.getLeadingCommentRanges(text, s.pos) ?? []).some((c) => text.slice(c.pos, c.end).startsWith('/**')))
    .map((s) => s.getText(source));
  assert.deepEqual(undocumented, []);
});

test('wrapWithReLoRA leaves the output unchanged; training moves only LoRA factors; mergeAndReinit folds them into W', () => {
  const model = new LlamaForCausalLM(TINY).initWeights(1);
  const before = logits(model, ids(0));
  const relora = wrapWithReLoRA(model, { rank: 4, dropout: 0, seed: 3 });
  assert.equal(relora.layers.size, 2 * 7);
  assert.ok(maxDiff(logits(model, ids(0)), before) < 1e-6, 'B = 0 at wrapping');

  const q = relora.layers.get('model.layers.0.self_attn.q_proj')!;
  const w0 = Float32Array.from(q.weight.data);
  const optimizer = new AdamW(model.namedTrainableParameters(), { lr: 1e-2 });
  assert.ok(!optimizer.params.some(([name]) => name.endsWith('q_proj.weight')), 'frozen W gets no optimizer state');
  for (let s = 0; s < 3; s++) trainStep(model, optimizer, [ids(s)], 1e-2, 1);
  assert.deepEqual(q.weight.data, w0, 'W is frozen while training');
  const trained = logits(model, ids(0));
  assert.ok(maxDiff(trained, before) > 1e-4, 'training changed the model');
  const moments = optimizer.state.get('model.layers.0.self_attn.q_proj.lora_B.weight')!.m.data;
  const nonZero = (a: Float32Array): number => a.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0);
  const nonZeroBefore = nonZero(moments);

  mergeAndReinit(relora, { optimizer, reset: 'magnitude:0.5' });
  assert.deepEqual(relora.counters, { merges: 1, resets: 1 });
  assert.ok(maxDiff(q.weight.data, w0) > 0, 'W took the merged update');
  assert.ok(q.loraB.data.every((v) => v === 0), 'B re-zeroed');
  assert.ok(maxDiff(logits(model, ids(0)), trained) < 1e-4, 'a merge does not change the function');
  assert.ok(nonZero(moments) <= Math.ceil(nonZeroBefore / 2), 'half of the LoRA moments pruned by magnitude');

  mergeAndReinit(relora);
  assert.deepEqual(relora.counters, { merges: 2, resets: 1 }, 'without an optimizer only the merge happens');
  assert.throws(() => mergeAndReinit({ model, layers: relora.layers, counters: relora.counters }), /expected the object wrapWithReLoRA returned/);
  optimizer.dispose();
  model.dispose();
});

test('fromPretrained reads a transformers folder; savePretrained writes a wrapped model merged, and it reads back the same', async () => {
  const { dir, cleanup } = tempDir('api-hf');
  try {
    const imported = await LlamaForCausalLM.fromPretrained(interopFixture('gqa'));
    assert.ok(imported instanceof LlamaForCausalLM);
    assert.equal(imported.config.numKVHeads, 2);

    const tokenizer = await Tokenizer.train(['the cat sat on the mat', 'a dog ran in the park'], { vocabSize: 280 });
    const V = tokenizer.vocabSize;
    const model = new LlamaForCausalLM({ ...TINY, vocabSize: V }).initWeights(2);
    const relora = wrapWithReLoRA(model, { rank: 2, dropout: 0 });
    for (const layer of relora.layers.values()) layer.loraB.data.fill(0.01);
    const expected = logits(model, ids(1, 2, 16, V));
    const files = await model.savePretrained(join(dir, 'out'), { tokenizer });
    assert.ok(files.some((f) => f.endsWith('model.safetensors')) && files.some((f) => f.endsWith('tokenizer.json')));
    assert.equal(relora.layers.size, 14, 'the model itself keeps its LoRA layers');

    const back = await LlamaForCausalLM.fromPretrained(join(dir, 'out'));
    assert.ok(maxDiff(logits(back, ids(1, 2, 16, V)), expected) < 1e-5, 'the saved folder is the merged model');
    const again = await Tokenizer.fromPretrained(join(dir, 'out'));
    assert.deepEqual(again.encode('the cat ran'), tokenizer.encode('the cat ran'));
    // With a zero head every logit ties and greedy picks id 0, the EOS of a trained BPE: generation stops, and the EOS is not text.
    back.stateDict()['lm_head.weight'].data.fill(0);
    assert.equal(again.eosId, 0);
    assert.equal(generateText(back, again, 'the', { maxNewTokens: 3, temperature: 0 }), '');
    const streamed: string[] = [];
    const all = generateText(back, again, 'the', { maxNewTokens: 3, temperature: 0, stopIds: [], onText: (t) => streamed.push(t) });
    assert.equal(all, '<|endoftext|>'.repeat(3));
    assert.equal(streamed.join(''), all);
    await assert.rejects(LlamaForCausalLM.fromPretrained(join(dir, 'nowhere')), /nowhere: no such file or folder/);
  } finally {
    cleanup();
  }
});

test('train() takes a partial config and calls back; loadRun, loadCheckpoint and exportHf read what it left', async () => {
  const { dir, cleanup } = tempDir('api-train');
  process.env.RELORA_CACHE_DIR = join(dir, 'cache');
  try {
    const words = 'the cat sat on a mat while the dog ran to the park'.split(' ');
    const docs = Array.from({ length: 60 }, (_, i) => Array.from({ length: 30 }, (_, j) => words[(i * 5 + j * 3) % words.length]).join(' '));
    writeFileSync(join(dir, 'docs.jsonl'), docs.map((text) => JSON.stringify({ text })).join('\n'));

    await assert.rejects(train({ mode: 'relora', stepz: 3 } as never), (e: unknown) => e instanceof ConfigError && /did you mean "steps"/.test(e.message));

    const seen = { evals: [] as number[], restarts: [] as number[], phases: [] as string[], metrics: 0 };
    const hooks: TrainHooks = {
      onMetric: () => { seen.metrics++; },
      onEval: (e) => seen.evals.push(e.step),
      onRestart: (r) => seen.restarts.push(r.step),
      onPhase: (p) => seen.phases.push(p.phase),
    };
    const runDir = join(dir, 'run');
    const summary = await train({
      model: { hidden_size: 16, intermediate_size: 32, num_heads: 2, num_layers: 2 }, tokenizer_vocab_size: 300,
      data: [join(dir, 'docs.jsonl')], mode: 'relora', rank: 2, seq_len: 16, micro_batch: 2, steps: 9, warm_start_steps: 3,
      cycle_length: 2, warmup_steps: 1, restart_warmup_steps: 1, eval_every: 3, save_every: 3, rank_sample: 'none', backend: 'js', out: runDir,
    }, { ...hooks, log: () => {} });
    assert.equal(summary.steps, 9);
    assert.deepEqual(seen.phases, ['full', 'relora']);
    assert.deepEqual(seen.restarts, [6, 8], 'restarts after phase updates 3 and 5 (R = 2)');
    assert.deepEqual(seen.evals, [0, 3, 6, 9]);

    const run = loadRun(runDir);
    assert.equal(run.config.mode, 'relora');
    assert.equal(run.metrics.length, seen.metrics, 'every metrics.jsonl record went through onMetric');
    assert.equal(run.summary?.final_eval_loss, summary.final_eval_loss);
    assert.match(run.checkpoints[0], /step-000009$/);
    const report = await writeReport(runDir);
    assert.ok(existsSync(report.html) && readFileSync(report.html, 'utf8').includes('<svg'), 'report.html with its charts');

    await assert.rejects(train({ out: runDir, steps: 20 }, { resume: true }), /resume continues the run with the config saved in its folder; remove steps/);
    const resumed = await train({ out: runDir, backend: 'js' }, { resume: true, log: () => {} });
    assert.equal(resumed.steps, 9, 'resuming a finished run changes nothing');
    assert.equal(resumed.final_eval_loss, summary.final_eval_loss);

    const ck = await loadCheckpoint(runDir);
    assert.equal(ck.state.step, 9);
    assert.equal(ck.state.phase, 'relora');
    assert.ok(ck.model instanceof LlamaForCausalLM && ck.tokenizer !== null);
    const files = await exportHf(runDir, join(dir, 'hf'));
    assert.ok(files.some((f) => f.endsWith('config.json')));
    const exported = await LlamaForCausalLM.fromPretrained(join(dir, 'hf'));
    assert.ok(maxDiff(logits(exported, ids(2, 1, 16, 300)), logits(ck.model, ids(2, 1, 16, 300))) < 1e-5);
  } finally {
    delete process.env.RELORA_CACHE_DIR;
    cleanup();
  }
});
