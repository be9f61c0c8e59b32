/**
 * Device residency on `--backend webgpu`: during training a tensor's data stays in its device
 * buffer, so an update reads back only what the trainer asks for — the micro-batches' losses and
 * every gradient's sum of squares (for the norm and the non-finite check), together: exactly 1
 * synchronous readback per update in one process, however many micro-batches (a kernel call that
 * read its outputs back, as the first bridge did, costs about 500). A ReLoRA restart merges on the device and reads the optimizer
 * moments back once, all together, for the reset's pruning. Device buffers are pooled with the host arrays they belong to, so once the first
 * updates have filled the pools no update creates a buffer. And the data is right: the losses
 * match the native backend's and the parameters the host reads back at the end are native's
 * too. In CI the adapter is SwiftShader; without an adapter the test fails.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';

import { K, setBackend } from '../../src/engine/backend.ts';
import { SWIFTSHADER_ICD } from '../../src/engine/backends/webgpu/gpu.ts';
import { webGpuCounters } from '../../src/engine/backends/webgpu/bridge.ts';
import { RandomStream } from '../../src/engine/rng.ts';
import { Tensor, toHostAll } from '../../src/engine/tensor.ts';
import { applyDropout, dropoutBackwardAdd } from '../../src/engine/ops/dropout.ts';
import type { LlamaConfig } from '../../src/nn/config.ts';
import { LlamaForCausalLM } from '../../src/nn/llama.ts';
import { AdamW, clipGradNorm, clipScale, scaleGradients, startGradNorm } from '../../src/optim/adamw.ts';
import { restart } from '../../src/relora/restart.ts';
import { DEFAULT_LORA, loraStreams, wrapWithLora } from '../../src/relora/wrap.ts';
import { trainStep } from '../../src/train/step.ts';

if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;

const tiny: LlamaConfig = { vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numLayers: 2, maxSeqLen: 32, rmsNormEps: 1e-6, ropeTheta: 10000 };
const MICRO_BATCHES = 3;
const WARMUP = 3, MEASURED = 5;

function ids(seed: number, B = 2, T = 16): Tensor {
  const u = new Float32Array(B * T);
  new RandomStream(seed).uniform(u);
  return Tensor.from(Int32Array.from(u, (x) => Math.floor(x * tiny.vocabSize)), [B, T]);
}

interface Run {
  losses: number[];
  gradNorms: number[];
  readbacks: number[];
  deviceBuffers: number[];
  liveBuffers: number[];
  /** Readbacks of the ReLoRA restart (merge, re-draw, optimizer reset) after the updates. */
  restartReadbacks: number;
  params: Float32Array[];
}

function train(backend: 'native' | 'webgpu'): Run {
  setBackend(backend);
  const model = new LlamaForCausalLM(tiny).initWeights(5);
  const layers = wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 4, dropout: 0.1 }, loraStreams(5));
  const opt = new AdamW(model.namedTrainableParameters(), { lr: 1e-3, weightDecay: 0.01 });
  const run: Run = { losses: [], gradNorms: [], readbacks: [], deviceBuffers: [], liveBuffers: [], restartReadbacks: 0, params: [] };
  for (let s = 0; s < WARMUP + MEASURED; s++) {
    const before = webGpuCounters()?.readbacks ?? 0;
    const batches = Array.from({ length: MICRO_BATCHES }, (_, j) => ids(100 * s + j));
    const r = trainStep(model, opt, batches, 1e-3, 1);
    for (const b of batches) b.dispose();
    run.losses.push(r.loss);
    run.gradNorms.push(r.gradNorm);
    const c = webGpuCounters();
    if (backend === 'webgpu' && c) {
      run.readbacks.push(c.readbacks - before);
      run.deviceBuffers.push(c.deviceBuffers);
      run.liveBuffers.push(c.liveBuffers);
    }
  }
  const before = webGpuCounters()?.readbacks ?? 0;
  restart(layers, opt, { method: 'random', ratio: 0.9 }, { init: new RandomStream(7), prune: new RandomStream(8) }, { merges: 0, resets: 0 });
  run.restartReadbacks = (webGpuCounters()?.readbacks ?? 0) - before;
  // One more update: its loss and norm check the merge and the reset against native.
  const after = trainStep(model, opt, [ids(999)], 1e-3, 1);
  run.losses.push(after.loss);
  run.gradNorms.push(after.gradNorm);
  // Reading the parameters on the host brings them back from the device.
  run.params = model.parameters().map((p) => Float32Array.from(p.data));
  opt.dispose();
  model.dispose();
  return run;
}

test('webgpu training: 1 readback per update (3 micro-batches), ≤ 1 per ReLoRA restart, no device buffer created after the first updates, native losses', (t) => {
  const native = train('native');
  const gpu = train('webgpu');
  setBackend('native');
  t.diagnostic(`readbacks per update: ${gpu.readbacks.join(', ')}; device buffers created: ${gpu.deviceBuffers.join(', ')}; live: ${gpu.liveBuffers.join(', ')}; restart: ${gpu.restartReadbacks} readback(s)`);
  // The merge runs on the device; the reset's host pruning reads all the moments back at once.
  assert.ok(gpu.restartReadbacks <= 1, `a ReLoRA restart took ${gpu.restartReadbacks} synchronous readbacks, expected at most 1`);

  gpu.readbacks.forEach((n, s) => assert.equal(n, 1, `update ${s}: ${n} synchronous readbacks, expected 1 (the losses and the gradients' sums of squares together)`));
  const steady = gpu.deviceBuffers.slice(WARMUP);
  assert.ok(steady.every((n) => n === steady[0]), `device storage buffers created by update: ${gpu.deviceBuffers.join(', ')} (the pool must serve every update after the first ${WARMUP})`);
  const live = gpu.liveBuffers.slice(WARMUP);
  assert.ok(live.every((n) => n === live[0]), `live device buffers by update: ${gpu.liveBuffers.join(', ')}`);

  for (let s = 0; s < native.losses.length; s++) {
    assert.ok(Math.abs(native.losses[s] - gpu.losses[s]) <= 1e-4, `update ${s}: native loss ${native.losses[s]}, webgpu ${gpu.losses[s]}`);
    assert.ok(Math.abs(native.gradNorms[s] - gpu.gradNorms[s]) <= 1e-4 * Math.max(1, native.gradNorms[s]), `update ${s}: native grad norm ${native.gradNorms[s]}, webgpu ${gpu.gradNorms[s]}`);
  }
  let worst = 0;
  native.params.forEach((p, i) => p.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - gpu.params[i][j])))));
  assert.ok(worst <= 1e-4, `parameters read back after training differ from native's by up to ${worst}`);
});

test('webgpu: the gradients\' sums of squares stay on the device until read with other values; the norm, the clipping and a non-finite gradient match native', () => {
  const sizes = [300, 7, 1000];
  const clipOnce = (backend: 'native' | 'webgpu', poison: boolean): { norm: number; grads: Float32Array[]; readbacks: number } => {
    setBackend(backend);
    const params = sizes.map((n) => Tensor.zeros([n]));
    params.forEach((p, i) => {
      const g = new Float32Array(p.size);
      new RandomStream(10 + i).uniform(g, -1, 1);
      if (poison && i === 1) g[3] = Infinity;
      // Made by a kernel, so on the device the host copy is stale.
      p.grad = Tensor.empty(p.shape, false);
      K().scale(Tensor.from(g).buf, 3, p.grad.buf, p.size);
    });
    const other = Tensor.empty([4], false);
    K().scale(Tensor.from(new Float32Array([1, 2, 3, 4])).buf, 2, other.buf, 4);
    const before = webGpuCounters()?.readbacks ?? 0;
    const pending = startGradNorm(params);
    toHostAll(pending.deviceSums ? [other, pending.deviceSums] : [other]);
    assert.deepEqual(Array.from(other.data), [2, 4, 6, 8]);
    const norm = pending.norm();
    scaleGradients(params, clipScale(norm, 1));
    const readbacks = (webGpuCounters()?.readbacks ?? 0) - before;
    return { norm, grads: params.map((p) => Float32Array.from(p.grad!.data)), readbacks };
  };
  for (const poison of [false, true]) {
    const native = clipOnce('native', poison), gpu = clipOnce('webgpu', poison);
    setBackend('native');
    // The sums come back with the other tensor, and clipping reads nothing more.
    assert.equal(gpu.readbacks, 1, `the sums of squares, the other tensor and the clipping took ${gpu.readbacks} readbacks, expected 1`);
    if (poison) {
      assert.ok(!Number.isFinite(gpu.norm), `an infinite gradient element gave the norm ${gpu.norm}`);
    } else {
      assert.ok(Math.abs(native.norm - gpu.norm) <= 1e-5 * native.norm, `norm: native ${native.norm}, webgpu ${gpu.norm}`);
    }
    native.grads.forEach((g, i) => g.forEach((v, j) => assert.ok(v === gpu.grads[i][j] || Math.abs(v - gpu.grads[i][j]) <= 1e-6, `grad ${i}[${j}]: native ${v}, webgpu ${gpu.grads[i][j]}`)));
  }
  // clipGradNorm is the two halves back to back.
  setBackend('webgpu');
  const p = Tensor.zeros([5]);
  p.grad = Tensor.from(new Float32Array([3, 4, 0, 0, 0]));
  assert.ok(Math.abs(clipGradNorm([p], 1) - 5) < 1e-6);
  assert.ok(Math.abs(p.grad.data[1] - 4 / (5 + 1e-6)) < 1e-6);
  setBackend('native');
});

test('webgpu: LoRA dropout at a mask offset (a data-parallel rank) reads its inputs from the device and leaves its output there', () => {
  const n = 300, d = { p: 0.3, key: 0x1234567, offset: 77 };
  const values = (seed: number): Float32Array => {
    const a = new Float32Array(n);
    new RandomStream(seed).uniform(a, -1, 1);
    return a;
  };
  const run = (backend: 'js' | 'webgpu'): Float32Array[] => {
    setBackend(backend);
    // The inputs come out of kernels, so on the device their host copies are stale.
    const x = Tensor.empty([n], false), g = Tensor.empty([n], false);
    K().scale(Tensor.from(values(1)).buf, 2, x.buf, n);
    K().scale(Tensor.from(values(2)).buf, 2, g.buf, n);
    const out = Tensor.empty([n], false), dx = Tensor.from(values(3));
    applyDropout(x.buf, out.buf, n, d);
    dropoutBackwardAdd(g.buf, dx.buf, n, d);
    // A kernel after the op sees what the op wrote.
    const twice = Tensor.empty([n], false);
    K().scale(out.buf, 2, twice.buf, n);
    return [Float32Array.from(twice.data), Float32Array.from(dx.data)];
  };
  const js = run('js'), gpu = run('webgpu');
  setBackend('native');
  assert.deepEqual(gpu[0], js[0]);
  js[1].forEach((v, i) => assert.ok(Math.abs(v - gpu[1][i]) <= 1e-6, `dx[${i}]: js ${v}, webgpu ${gpu[1][i]}`));
});

test('webgpu: host reads and writes through Tensor.data meet the device copy both ways', () => {
  setBackend('webgpu');
  const n = 1000;
  const x = Tensor.from(Float32Array.from({ length: n }, (_, i) => i));
  const y = Tensor.empty([n], false);
  K().scale(x.buf, 2, y.buf, n); // y is newer on the device
  // Wrapping y's array in another tensor sees the device's values.
  const wrapped = Tensor.from(y.buf);
  assert.equal(wrapped.data[n - 1], 2 * (n - 1));
  // A host write through data reaches the next kernel.
  y.data[0] = 42;
  const z = Tensor.empty([n], false);
  K().scale(y.buf, 1, z.buf, n);
  assert.equal(z.data[0], 42);
  assert.equal(z.data[5], 10);
  // overwrite() reads nothing back and its writes reach the device too.
  const readbacks = webGpuCounters()!.readbacks;
  z.overwrite().fill(3);
  assert.equal(webGpuCounters()!.readbacks, readbacks);
  K().scale(z.buf, 2, y.buf, n);
  assert.equal(y.data[7], 6);
  setBackend('native');
});
