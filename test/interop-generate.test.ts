/**
 * Generation: the KV cache reproduces the full forward pass position by position (GQA, tied,
 * LoRA-wrapped models, on every backend available), cached greedy generation equals greedy by
 * full recomputation, sampling is seeded and honours top-k / top-p, and streamed text never
 * splits a UTF-8 character.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { loadNativeKernels } from '../src/engine/backends/native.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { generate, TextStreamer } from '../src/infer/generate.ts';
import { KVCache } from '../src/infer/kv-cache.ts';
import { argmax, TokenSampler } from '../src/infer/sampling.ts';
import type { LlamaConfig } from '../src/nn/config.ts';
import type { LlamaForCausalLM } from '../src/nn/llama.ts';
import { DEFAULT_LORA, loraStreams, wrapWithLora } from '../src/relora/wrap.ts';
import { bpeTokenizer, greedyFullRecompute, logitsOf, maxAbsDiff, randomModel } from './interop-helpers.ts';

const base: LlamaConfig = {
  vocabSize: 64, hiddenSize: 32, intermediateSize: 48, numHeads: 4, numLayers: 2, maxSeqLen: 48, rmsNormEps: 1e-6, ropeTheta: 10000,
};

function models(): [string, LlamaForCausalLM][] {
  const lora = randomModel(base, 3);
  const layers = wrapWithLora(lora, { ...DEFAULT_LORA, rank: 4, alpha: 8, dropout: 0.1 }, loraStreams(1));
  const rng = new RandomStream(4);
  for (const l of layers.values()) rng.normal(l.loraB.data, 0, 0.1);
  return [
    ['multi-head', randomModel(base, 1)],
    ['grouped-query + tied', randomModel({ ...base, numKVHeads: 1, tieWordEmbeddings: true }, 2)],
    ['LoRA-wrapped', lora.eval()],
  ];
}

const backends = loadNativeKernels() ? (['js', 'native'] as const) : (['js'] as const);
const seq = [5, 17, 3, 60, 22, 9, 41, 0, 33, 12, 7];

for (const backend of backends) {
  test(`KV cache (${backend}): prefill then one position at a time gives the full forward pass's logits`, () => {
    setBackend(backend);
    for (const [name, model] of models()) {
      const V = model.config.vocabSize;
      const full = logitsOf(model, Tensor.from(Int32Array.from(seq), [1, seq.length]));
      const cache = new KVCache(model, seq.length);
      const prefill = cache.forward(seq.slice(0, 4), true);
      assert.ok(maxAbsDiff(prefill, full.subarray(0, 4 * V)) < 1e-4, `${name}: prefill`);
      for (let t = 4; t < seq.length; t++) {
        const step = cache.forward([seq[t]]);
        const diff = maxAbsDiff(step, full.subarray(t * V, (t + 1) * V));
        assert.ok(diff < 1e-4, `${name}: position ${t} differs by ${diff}`);
      }
      assert.equal(cache.length, seq.length);
      assert.throws(() => cache.forward([1]), /exceed the cache capacity 11/);
      assert.throws(() => new KVCache(model, 4).forward([V]), /token id 64 at position 0 is outside \[0, 64\)/);
    }
    setBackend('js');
  });
}

test('cached greedy generation equals greedy generation by full recomputation', () => {
  setBackend('js');
  for (const [name, model] of models()) {
    const prompt = [7, 1, 30];
    const cached = generate(model, prompt, { maxNewTokens: 20, temperature: 0 });
    assert.deepEqual(cached, greedyFullRecompute(model, prompt, 20), name);
  }
});

test('generation stops at a stop id, streams each id, and checks its inputs', () => {
  setBackend('js');
  const model = randomModel(base, 1);
  const all = generate(model, [3], { maxNewTokens: 12, temperature: 0 });
  const stopAt = all[5];
  const seen: number[] = [];
  const stopped = generate(model, [3], { maxNewTokens: 12, temperature: 0, stopIds: [stopAt], onToken: (id) => seen.push(id) });
  assert.deepEqual(stopped, all.slice(0, all.indexOf(stopAt) + 1));
  assert.deepEqual(seen, stopped);
  assert.deepEqual(generate(model, [3], { maxNewTokens: 0 }), []);
  assert.throws(() => generate(model, [], { maxNewTokens: 3 }), /prompt is empty/);
  assert.throws(() => generate(model, [1, 64], { maxNewTokens: 3 }), /prompt token 1 is 64, outside the vocabulary \[0, 64\)/);
  assert.throws(() => generate(model, [1], { maxNewTokens: 3, temperature: -1 }), /temperature must be a number >= 0/);
  assert.throws(() => generate(model, [1], { maxNewTokens: 3, topP: 0 }), /top-p must be in \(0, 1\]/);
  assert.throws(() => generate(model, [1], { maxNewTokens: 3, topK: 1.5 }), /top-k must be an integer/);
});

test('sampling: seeded, top-k 1 and a tiny top-p are greedy, frequencies follow softmax(logits / T)', () => {
  const logits = Float32Array.from([2.0, 1.5, 0.2, -1.0, 1.9]);
  const draw = (opts: ConstructorParameters<typeof TokenSampler>[0], n: number): number[] => {
    const s = new TokenSampler(opts);
    return Array.from({ length: n }, () => s.next(logits));
  };
  assert.deepEqual(draw({ seed: 5 }, 50), draw({ seed: 5 }, 50));
  assert.notDeepEqual(draw({ seed: 5 }, 50), draw({ seed: 6 }, 50));
  assert.ok(draw({ topK: 1, seed: 1 }, 30).every((i) => i === argmax(logits)));
  assert.ok(draw({ topP: 1e-6, seed: 1 }, 30).every((i) => i === 0));
  assert.ok(draw({ temperature: 0, seed: 1 }, 5).every((i) => i === 0));

  const n = 20000, T = 0.7;
  const counts = new Array<number>(logits.length).fill(0);
  for (const i of draw({ temperature: T, seed: 9 }, n)) counts[i]++;
  const z = Array.from(logits, (l) => Math.exp(l / T));
  const total = z.reduce((a, b) => a + b, 0);
  for (let i = 0; i < logits.length; i++) {
    const p = z[i] / total, sd = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(counts[i] / n - p) < 5 * sd + 1e-3, `token ${i}: frequency ${counts[i] / n}, probability ${p}`);
  }
  // p = 0.37, 0.22, 0.06, 0.02, 0.33: top-k 2 keeps tokens 0 and 4; so does top-p 0.55 (0.37 + 0.33 ≥ 0.55).
  assert.deepEqual(new Set(draw({ topK: 2, seed: 2 }, 400)), new Set([0, 4]));
  assert.deepEqual(new Set(draw({ topP: 0.55, seed: 3 }, 400)), new Set([0, 4]));
});

test('streamed text equals the decoded text and never holds half a UTF-8 character', async () => {
  const tok = await bpeTokenizer();
  const text = 'naïve café — 日本語 👋🏽 ok\n\n';
  const ids = tok.encode(text);
  const streamer = new TextStreamer((x) => tok.decode(x));
  const pieces = ids.map((id) => streamer.push(id));
  pieces.push(streamer.flush());
  assert.equal(pieces.join(''), tok.decode(ids));
  assert.equal(pieces.join(''), text);
  assert.ok(pieces.every((p) => !p.includes('\uFFFD')));
  assert.ok(pieces.some((p) => p === ''), 'some byte tokens end inside a character and wait');

  // After a prompt: only the continuation is emitted.
  const prompt = tok.encode('Hello');
  const after = new TextStreamer((x) => tok.decode(x), prompt);
  const rest = ids.map((id) => after.push(id)).join('') + after.flush();
  assert.equal(rest, tok.decode([...prompt, ...ids]).slice('Hello'.length));
});
