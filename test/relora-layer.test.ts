import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { noGrad, scope, Tensor } from '../src/engine/tensor.ts';
import { countParameters, namedConfig, type LlamaConfig } from '../src/nn/config.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { LoraLinear } from '../src/relora/lora-linear.ts';
import { mergeAll } from '../src/relora/restart.ts';
import { loraStreams, wrapWithLora, DEFAULT_LORA } from '../src/relora/wrap.ts';

setBackend('js');

const tiny: LlamaConfig = { vocabSize: 50, hiddenSize: 16, intermediateSize: 40, numHeads: 2, numLayers: 2, maxSeqLen: 16, rmsNormEps: 1e-6, ropeTheta: 10000 };

function randomIds(B: number, T: number, V: number, seed: number): Tensor {
  const u = new Float32Array(B * T);
  new RandomStream(seed).uniform(u);
  return Tensor.from(Int32Array.from(u, (x) => Math.floor(x * V)), [B, T]);
}

function logits(model: LlamaForCausalLM, ids: Tensor): Float32Array {
  return noGrad(() => scope(() => Float32Array.from(model.eval().forward(ids).data)));
}

test('wrapping a model with LoRA changes its output by nothing', () => {
  const model = new LlamaForCausalLM(tiny).initWeights(1);
  const ids = randomIds(2, 8, tiny.vocabSize, 2);
  const before = logits(model, ids);
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 8 }, loraStreams(3));
  assert.equal(layers.size, 7 * tiny.numLayers);
  assert.deepEqual(logits(model, ids), before);
  // A is random (not the reference's zeroed A), B is zero.
  const l = [...layers.values()][0];
  assert.ok(l.loraA.data.some((x) => x !== 0));
  assert.ok(l.loraB.data.every((x) => x === 0));
  const bound = 1 / Math.sqrt(l.inFeatures);
  assert.ok(l.loraA.data.every((x) => Math.abs(x) <= bound));
});

test('a merge changes the output by nothing (up to fp32 rounding) and re-initialises A and B', () => {
  const model = new LlamaForCausalLM(tiny).initWeights(1);
  const ids = randomIds(2, 8, tiny.vocabSize, 2);
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 8, dropout: 0 }, loraStreams(3));
  const rng = new RandomStream(5);
  for (const l of layers.values()) rng.normal(l.loraB.data, 0, 0.05); // a trained-looking B
  const before = logits(model, ids);
  const oldA = Float32Array.from([...layers.values()][0].loraA.data);
  mergeAll(layers, new RandomStream(6));
  const after = logits(model, ids);
  let maxDiff = 0;
  for (let i = 0; i < before.length; i++) maxDiff = Math.max(maxDiff, Math.abs(before[i] - after[i]));
  assert.ok(maxDiff < 1e-5, `merge changed logits by ${maxDiff}`);
  const l = [...layers.values()][0];
  assert.ok(l.loraB.data.every((x) => x === 0));
  assert.notDeepEqual(l.loraA.data, oldA);
});

test('frozen weights get no gradient; LoRA factors, embeddings, norms and lm_head do', () => {
  const model = new LlamaForCausalLM(tiny).initWeights(1);
  wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 8, dropout: 0.1 }, loraStreams(3));
  model.train();
  const ids = randomIds(2, 8, tiny.vocabSize, 2);
  scope(() => model.loss(ids).backward());
  for (const [name, t] of model.namedParameters()) {
    const frozen = /_proj\.weight$/.test(name);
    assert.equal(t.requiresGrad, !frozen, name);
    assert.equal(t.grad === null, frozen, `${name} gradient presence`);
  }
  // lora_A gets a nonzero gradient from the first step only if B were nonzero; B's is nonzero.
  const b = model.namedParameters().find(([n]) => n.endsWith('q_proj.lora_B.weight'))![1];
  assert.ok(b.grad!.data.some((x) => x !== 0));
});

test('parameter counts match the table of docs/method.md (total and trainable at r = 128)', () => {
  const expected: Record<string, [number, number]> = {
    llama_9m: [9.0, 9.5], llama_20m: [19.6, 18.9], llama_35m: [35.3, 30.3], llama_60m: [58.2, 42.9], llama_130m: [134.3, 71.7],
  };
  for (const [name, [total, trainable]] of Object.entries(expected)) {
    const cfg = namedConfig(name);
    assert.equal((countParameters(cfg) / 1e6).toFixed(1), total.toFixed(1), `${name} total`);
    const d = cfg.hiddenSize, f = cfg.intermediateSize, r = 128;
    const lora = cfg.numLayers * (4 * r * 2 * d + 3 * r * (d + f));
    const rest = 2 * cfg.vocabSize * d + (2 * cfg.numLayers + 1) * d;
    assert.equal(((lora + rest) / 1e6).toFixed(1), trainable.toFixed(1), `${name} trainable`);
  }
  // And the model object agrees with the formula on a small instance.
  const cfg = namedConfig('llama_9m', { vocabSize: 1000 });
  const m = new LlamaForCausalLM(cfg);
  const n = m.parameters().reduce((a, t) => a + t.size, 0);
  assert.equal(n, countParameters(cfg));
  wrapWithLora(m, { ...DEFAULT_LORA, rank: 128 }, loraStreams(0));
  const trainable = m.namedTrainableParameters().reduce((a, [, t]) => a + t.size, 0);
  const d = 128, f = 352;
  assert.equal(trainable, 4 * (4 * 128 * 2 * d + 3 * 128 * (d + f)) + 2 * 1000 * d + 9 * d);
  m.dispose();
});

test('bad LoRA options and unknown model names give clear errors', () => {
  assert.throws(() => namedConfig('llama_7b'), /unknown model "llama_7b"; known models: llama_9m/);
  const model = new LlamaForCausalLM(tiny);
  assert.throws(() => wrapWithLora(model, { ...DEFAULT_LORA, rank: 17 }, loraStreams(0)), /rank 17 exceeds min\(in, out\) = min\(16, 16\)/);
  assert.throws(() => wrapWithLora(model, { ...DEFAULT_LORA, rank: 0 }, loraStreams(0)), /rank must be a positive integer, got 0/);
  assert.throws(() => wrapWithLora(model, { ...DEFAULT_LORA, alpha: -1 }, loraStreams(0)), /alpha must be > 0, got -1/);
  assert.throws(() => wrapWithLora(model, { ...DEFAULT_LORA, targetModules: ['qproj'] }, loraStreams(0)), /unknown module "qproj"/);
  assert.ok(!(model.layers.at(0).child('self_attn').child('q_proj') instanceof LoraLinear));
});
