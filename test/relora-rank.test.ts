import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { RandomStream } from '../src/engine/rng.ts';
import type { LlamaConfig } from '../src/nn/config.ts';
import { Linear } from '../src/nn/layers.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { LoraLinear } from '../src/relora/lora-linear.ts';
import { defaultRankSample, MAX_RECORDED_VALUES, RankTracker, updateRank } from '../src/relora/rank.ts';
import { mergeAll } from '../src/relora/restart.ts';
import { DEFAULT_LORA, loraStreams, wrapWithLora } from '../src/relora/wrap.ts';

setBackend('js');

const tiny: LlamaConfig = { vocabSize: 50, hiddenSize: 24, intermediateSize: 64, numHeads: 2, numLayers: 3, maxSeqLen: 16, rmsNormEps: 1e-6, ropeTheta: 10000 };

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const a = new Float32Array(rows * cols);
  new RandomStream(seed).normal(a);
  return a;
}

/** w0 + Σ_c s_c · u_c v_cᵀ with u_c, v_c unit coordinate vectors (so the update's σ are exactly s). */
function plusDiagonalUpdate(w0: Float32Array, inF: number, s: number[]): Float32Array {
  const w = Float32Array.from(w0);
  s.forEach((x, c) => { w[(2 * c + 1) * inF + c] += x; });
  return w;
}

test('updateRank: a random rank-3 update has rank 3; the singular values are those of W − W0', () => {
  const outF = 20, inF = 30;
  const w0 = randomMatrix(outF, inF, 1);
  const b = randomMatrix(outF, 3, 2), a = randomMatrix(3, inF, 3);
  const w = Float32Array.from(w0);
  for (let i = 0; i < outF; i++) for (let j = 0; j < inF; j++) for (let c = 0; c < 3; c++) w[i * inF + j] += 0.1 * b[i * 3 + c] * a[c * inF + j];
  const r = updateRank(w, w0, outF, inF);
  assert.equal(r.rank, 3);
  assert.equal(r.singularValues.length, outF);
  // W − W0 in float32 carries rounding of W's size (~1e-7·|W|), far below 1% of the update.
  assert.ok(r.singularValues[3] < 1e-4 * r.singularValues[0], `σ4/σ1 = ${r.singularValues[3] / r.singularValues[0]}`);
});

test('updateRank counts values strictly above relThreshold·σmax', () => {
  const outF = 12, inF = 10;
  const w0 = randomMatrix(outF, inF, 4);
  const w = plusDiagonalUpdate(w0, inF, [1, 0.5, 0.02, 0.005]);
  const r = updateRank(w, w0, outF, inF);
  // Only the four changed entries carry float32 rounding (≤ 3e-7 each).
  for (const [i, want] of [1, 0.5, 0.02, 0.005].entries()) {
    assert.ok(Math.abs(r.singularValues[i] - want) < 1e-6, `σ${i} = ${r.singularValues[i]}, expected ${want}`);
  }
  assert.equal(r.rank, 3);
  assert.equal(updateRank(w, w0, outF, inF, 0.03).rank, 2);
  assert.equal(updateRank(w, w0, outF, inF, 0.001).rank, 4);
});

test('updateRank of a zero update is 0 with all-zero singular values; bad input is rejected', () => {
  const w0 = randomMatrix(6, 4, 5);
  const r = updateRank(w0, Float32Array.from(w0), 6, 4);
  assert.equal(r.rank, 0);
  assert.deepEqual(r.singularValues, [0, 0, 0, 0]);
  assert.throws(() => updateRank(w0, w0, 6, 5), /w has 24 entries; expected outF·inF = 6·5 = 30/);
  assert.throws(() => updateRank(w0, new Float32Array(3), 6, 4), /w0 has 3 entries/);
  assert.throws(() => updateRank(w0, w0, 6, 4, 1), /relThreshold must be in \(0, 1\), got 1/);
  assert.throws(() => updateRank(w0, w0, 0, 4), /outF must be a positive integer, got 0/);
});

test('ReLoRA in miniature: k merges of random rank-r updates give W − W0 rank min(k·r, out, in)', () => {
  const r = 4;
  const model = new LlamaForCausalLM(tiny).initWeights(1);
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: r, alpha: 8, dropout: 0 }, loraStreams(2));
  // The algebraic rank, read at a tight threshold: float32 rounding of W leaves σ ≤ 4e-8·σmax
  // in the null directions here, while a sum that just fills a square matrix can have a genuine
  // σmin near 5e-6·σmax (a random n×n product's smallest σ is about 1/n² of its largest). For the
  // same reason the records' 1% rank can fall short of min(k·r, n) once k·r nears n.
  const exact = new RankTracker(layers, { modules: 'all', relThreshold: 1e-6 });
  const onePercent = new RankTracker(layers, { modules: 'all' });
  exact.start();
  onePercent.start();
  const rng = new RandomStream(7);

  // Before anything is trained the update is zero.
  for (const rec of exact.measure(0, 0)) assert.equal(rec.rank, 0, rec.module);
  // A trained but unmerged B already counts: the effective weight is W + s·B·A.
  for (const l of layers.values()) rng.normal(l.loraB.data, 0, 0.05);
  for (const rec of exact.measure(1, 0)) assert.equal(rec.rank, r, `${rec.module} before the first merge`);

  const seen = new Set<number>();
  for (let k = 1; k <= 8; k++) {
    mergeAll(layers, new RandomStream(100 + k));
    const records = exact.measure(10 * k, k);
    const coarse = onePercent.measure(10 * k, k);
    assert.equal(records.length, layers.size);
    records.forEach((rec, i) => {
      const l = layers.get(rec.module) as LoraLinear;
      const full = Math.min(l.outFeatures, l.inFeatures);
      assert.equal(rec.rank, Math.min(k * r, full), `${rec.module} (${l.outFeatures}×${l.inFeatures}) after ${k} merges`);
      assert.equal(rec.lora_rank, r);
      assert.equal(rec.merges, k);
      assert.equal(rec.step, 10 * k);
      seen.add(rec.rank);
      assert.equal(coarse[i].module, rec.module);
      assert.deepEqual(coarse[i].singular_values, rec.singular_values);
      if (2 * k * r <= full) assert.equal(coarse[i].rank, k * r, `1% rank of ${rec.module} after ${k} merges`);
      else assert.ok(coarse[i].rank <= rec.rank);
    });
    for (const l of layers.values()) rng.normal(l.loraB.data, 0, 0.05); // the next cycle's B
  }
  // Growth well past r, and saturation at min(out, in) = 24 for every matrix of this model.
  assert.deepEqual([...seen].sort((x, y) => x - y), [4, 8, 12, 16, 20, 24]);
});

test('records keep at most 256 singular values, descending, at 6 significant digits', () => {
  const streams = loraStreams(3);
  const base = new Linear(300, 260);
  new RandomStream(8).normal(base.weight.data, 0, 0.02);
  const layer = new LoraLinear(base, { rank: 8, alpha: 16, dropout: 0 }, streams.init, streams.dropout, 'big');
  const tracker = new RankTracker(new Map([['big', layer]]));
  tracker.start();
  // A full-rank update, as if the frozen weight itself had been trained.
  const noise = randomMatrix(260, 300, 9);
  for (let i = 0; i < noise.length; i++) layer.weight.data[i] += 1e-3 * noise[i];
  const [rec] = tracker.measure(5, 0);
  assert.equal(rec.module, 'big');
  assert.equal(rec.lora_rank, 8);
  assert.equal(rec.singular_values.length, MAX_RECORDED_VALUES);
  const exact = updateRank(layer.mergedWeight(), tracker.snapshot('big') as Float32Array, 260, 300).singularValues;
  assert.equal(exact.length, 260);
  assert.equal(rec.rank, updateRank(layer.mergedWeight(), tracker.snapshot('big') as Float32Array, 260, 300).rank);
  assert.ok(rec.rank > 200, `a random update is nearly full rank, got ${rec.rank}`);
  rec.singular_values.forEach((x, i) => {
    assert.equal(x, Number(exact[i].toPrecision(6)), `value ${i}`);
    if (i > 0) assert.ok(x <= rec.singular_values[i - 1]);
  });
  assert.ok(JSON.stringify(rec).length < 4000, 'one record stays a few kB');
});

test('the default sample is q_proj, v_proj and down_proj of the first and last layer', () => {
  const model = new LlamaForCausalLM(tiny).initWeights(1);
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: 2, alpha: 4 }, loraStreams(2));
  assert.deepEqual(new RankTracker(layers).modules, [
    'model.layers.0.mlp.down_proj', 'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj',
    'model.layers.2.mlp.down_proj', 'model.layers.2.self_attn.q_proj', 'model.layers.2.self_attn.v_proj',
  ]);
  // Targets without those projections: everything wrapped in the first and last layer.
  assert.deepEqual(defaultRankSample(['model.layers.0.self_attn.k_proj', 'model.layers.1.self_attn.k_proj', 'model.layers.3.mlp.up_proj']),
    ['model.layers.0.self_attn.k_proj', 'model.layers.3.mlp.up_proj']);
});

test('startFrom measures against the given warm-start weights; misuse is rejected with the name', () => {
  const model = new LlamaForCausalLM(tiny).initWeights(1);
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: 2, alpha: 4, targetModules: ['v_proj'] }, loraStreams(2));
  const name = 'model.layers.1.self_attn.v_proj';
  const tracker = new RankTracker(layers, { modules: [name] });
  assert.throws(() => tracker.measure(0, 0), /call start\(\) first/);
  const l = layers.get(name) as LoraLinear;
  const w0 = plusDiagonalUpdate(l.weight.data, l.inFeatures, [0.3, 0.2, 0.1].map((x) => -x));
  tracker.startFrom(new Map([[name, w0]]));
  w0.fill(0); // the tracker keeps its own copy
  const [rec] = tracker.measure(3, 1);
  assert.equal(rec.rank, 3);
  assert.ok(Math.abs(rec.singular_values[0] - 0.3) < 1e-6 && Math.abs(rec.singular_values[2] - 0.1) < 1e-6, `${rec.singular_values.slice(0, 3)}`);

  assert.throws(() => new RankTracker(layers, { modules: ['model.layers.0.self_attn.q_proj'] }), /module "model.layers.0.self_attn.q_proj" is not a LoRA-wrapped layer; wrapped layers are model.layers.0.self_attn.v_proj/);
  assert.throws(() => new RankTracker(layers, { modules: [] }), /module list is empty/);
  assert.throws(() => new RankTracker(layers, { relThreshold: 0 }), /relThreshold must be in \(0, 1\), got 0/);
  assert.throws(() => new RankTracker(new Map()), /no LoRA-wrapped layers/);
  assert.throws(() => tracker.startFrom(new Map()), /no warm-start weight given for "model.layers.1.self_attn.v_proj"/);
  assert.throws(() => tracker.startFrom(new Map([[name, new Float32Array(5)]])), /has 5 entries; expected 24·24 = 576/);
  assert.throws(() => tracker.measure(-1, 0), /step must be an integer >= 0, got -1/);
});
