/**
 * Grouped-query attention and tied embeddings in the model: the repeatKV op's layout and
 * gradient, parameter shapes and counts, LoRA on GQA shapes, and a tied tensor's single
 * gradient and single optimizer slot.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import * as ops from '../src/engine/ops/index.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { configFromJSON, configToJSON, countParameters, validateConfig, type LlamaConfig } from '../src/nn/config.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { DEFAULT_LORA, loraStreams, wrapWithLora } from '../src/relora/wrap.ts';
import { logitsOf, maxAbsDiff, randomIds, randomModel } from './interop-helpers.ts';

setBackend('js');

const gqa: LlamaConfig = {
  vocabSize: 40, hiddenSize: 32, intermediateSize: 48, numHeads: 4, numKVHeads: 2, numLayers: 2,
  maxSeqLen: 16, rmsNormEps: 1e-5, ropeTheta: 10000,
};

test('repeatKV copies key/value head g to query heads g·groups … g·groups+groups−1 and sums their gradients back', () => {
  const [B, T, kvH, D, groups] = [2, 3, 2, 4, 3];
  const x = Tensor.from(Float32Array.from({ length: B * T * kvH * D }, (_, i) => i), [B, T, kvH * D]);
  x.requiresGrad = true;
  const y = ops.repeatKV(x, kvH, groups);
  assert.deepEqual(y.shape, [B, T, kvH * groups * D]);
  for (let r = 0; r < B * T; r++) {
    for (let h = 0; h < kvH * groups; h++) {
      const g = Math.floor(h / groups);
      for (let d = 0; d < D; d++) assert.equal(y.data[(r * kvH * groups + h) * D + d], x.data[(r * kvH + g) * D + d]);
    }
  }
  const w = new Float32Array(y.size);
  new RandomStream(1).uniform(w, -1, 1);
  ops.sum(ops.mul(y, Tensor.from(w, y.shape))).backward();
  for (let r = 0; r < B * T; r++) {
    for (let g = 0; g < kvH; g++) {
      for (let d = 0; d < D; d++) {
        let expected = 0;
        for (let j = 0; j < groups; j++) expected += w[(r * kvH * groups + g * groups + j) * D + d];
        assert.ok(Math.abs(x.grad!.data[(r * kvH + g) * D + d] - expected) < 1e-6);
      }
    }
  }
  assert.equal(ops.repeatKV(x, kvH, 1), x, 'one query head per K/V head needs no copy');
  assert.throws(() => ops.repeatKV(x, 5, 2), /not divisible into 5 key\/value heads/);
});

test('a GQA model has [kvHeads·headDim, hidden] k/v projections and equals the MHA model whose k/v heads are repeated', () => {
  const model = randomModel(gqa, 3);
  const params = new Map(model.namedParameters());
  assert.deepEqual(params.get('model.layers.0.self_attn.k_proj.weight')!.shape, [16, 32]);
  assert.deepEqual(params.get('model.layers.0.self_attn.v_proj.weight')!.shape, [16, 32]);
  assert.deepEqual(params.get('model.layers.0.self_attn.q_proj.weight')!.shape, [32, 32]);
  assert.equal(model.parameters().reduce((n, t) => n + t.size, 0), countParameters(gqa));

  // Multi-head attention with each K/V head's rows duplicated computes the same function.
  const mha = new LlamaForCausalLM({ ...gqa, numKVHeads: 4 });
  const D = 8;
  for (const [name, t] of mha.namedParameters()) {
    const src = params.get(name)!;
    if (!/[kv]_proj/.test(name)) {
      t.data.set(src.data);
      continue;
    }
    for (let h = 0; h < 4; h++) t.data.set(src.data.subarray(Math.floor(h / 2) * D * 32, (Math.floor(h / 2) + 1) * D * 32), h * D * 32);
  }
  const ids = randomIds(2, 7, gqa.vocabSize, 4);
  const diff = maxAbsDiff(logitsOf(model, ids), logitsOf(mha, ids));
  assert.ok(diff < 1e-5, `GQA vs repeated MHA differ by ${diff}`);
});

test('numKVHeads must divide numHeads; the config round-trips through model.json form', () => {
  assert.throws(() => validateConfig({ ...gqa, numKVHeads: 3 }), /numKVHeads must be a positive divisor of numHeads 4, got 3/);
  assert.throws(() => validateConfig({ ...gqa, numKVHeads: 0 }), /numKVHeads/);
  const full = validateConfig({ ...gqa, numKVHeads: undefined });
  assert.equal(full.numKVHeads, 4);
  assert.equal(full.tieWordEmbeddings, false);
  const tied = { ...gqa, tieWordEmbeddings: true };
  assert.deepEqual(configFromJSON(JSON.parse(JSON.stringify(configToJSON(tied))), 'model.json'), validateConfig(tied));
  assert.throws(() => configFromJSON({ ...configToJSON(tied), hiddenSize: 'big' }, 'RUN/model.json'), /RUN\/model.json: field "hiddenSize" is "big"; expected a number/);
  assert.throws(() => configFromJSON({ ...configToJSON(tied), numKVHeads: 3 }, 'RUN/model.json'), /RUN\/model.json: model config: numKVHeads/);
});

test('LoRA wraps GQA projections with k/v outputs of kvHeads·headDim and trains them', () => {
  const model = randomModel(gqa, 5, 0.05).train();
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 8, dropout: 0 }, loraStreams(1));
  const k = layers.get('model.layers.1.self_attn.k_proj')!;
  assert.equal(k.outFeatures, 16);
  assert.deepEqual(k.loraB.shape, [16, 4]);
  assert.deepEqual(k.loraA.shape, [4, 32]);
  const ids = randomIds(2, 8, gqa.vocabSize, 6);
  model.loss(ids).backward();
  assert.ok(k.loraB.grad!.data.some((g) => g !== 0), 'lora_B of a GQA k_proj gets a gradient');
  assert.equal(k.weight.grad, null, 'the frozen W gets none');
});

test('tied embeddings: one tensor, listed once under the embedding name, with both uses in its gradient', () => {
  const tiedCfg = { ...gqa, tieWordEmbeddings: true };
  const tied = randomModel(tiedCfg, 7).train();
  const names = tied.namedParameters().map(([n]) => n);
  assert.ok(names.includes('model.embed_tokens.weight'));
  assert.ok(!names.includes('lm_head.weight'));
  assert.equal(tied.child('lm_head').param('weight'), tied.child('model').child('embed_tokens').param('weight'));
  assert.equal(tied.parameters().reduce((n, t) => n + t.size, 0), countParameters(tiedCfg));
  assert.equal(countParameters(tiedCfg), countParameters(gqa) - gqa.vocabSize * gqa.hiddenSize);

  // The same weights untied: the tied gradient is the embedding's plus the head's.
  const untied = new LlamaForCausalLM(gqa).train();
  const src = new Map(tied.namedParameters());
  for (const [name, t] of untied.namedParameters()) t.data.set(src.get(name === 'lm_head.weight' ? 'model.embed_tokens.weight' : name)!.data);
  const ids = randomIds(2, 8, gqa.vocabSize, 8);
  tied.loss(ids).backward();
  untied.loss(ids).backward();
  const u = new Map(untied.namedParameters());
  const expected = Float32Array.from(u.get('model.embed_tokens.weight')!.grad!.data, (g, i) => g + u.get('lm_head.weight')!.grad!.data[i]);
  const got = src.get('model.embed_tokens.weight')!.grad!.data;
  assert.ok(maxAbsDiff(got, expected) < 1e-6);

  // One optimizer slot; a step moves the shared tensor once.
  const opt = new AdamW(tied.namedTrainableParameters(), { lr: 1e-2 });
  assert.equal(opt.state.size, names.length);
  const before = Float32Array.from(src.get('model.embed_tokens.weight')!.data);
  opt.step();
  const after = src.get('model.embed_tokens.weight')!.data;
  const moved = maxAbsDiff(before, after);
  assert.ok(moved > 0 && moved <= 1e-2 * 1.0001, `an Adam step moves each entry by at most lr, moved ${moved}`);
  tied.dispose();
  untied.dispose();
});
