/**
 * bf16 mixed precision on `--backend webgpu`: its bf16 products, attention and fused loss run on
 * host copies (the js emulation) between device kernels, and a ReLoRA model's updates in bf16
 * match the native backend's (oneDNN, or its emulation) — the losses (each after the updates
 * before it) and the gradient norms — far closer than bf16 is to fp32. In CI the adapter is SwiftShader.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';

import { K, setBackend } from '../../src/engine/backend.ts';
import { jsKernels } from '../../src/engine/backends/js.ts';
import { SWIFTSHADER_ICD } from '../../src/engine/backends/webgpu/gpu.ts';
import { withPrecision, type Precision } from '../../src/engine/ops/precision.ts';
import { RandomStream } from '../../src/engine/rng.ts';
import { Tensor } from '../../src/engine/tensor.ts';
import type { LlamaConfig } from '../../src/nn/config.ts';
import { LlamaForCausalLM } from '../../src/nn/llama.ts';
import { AdamW } from '../../src/optim/adamw.ts';
import { DEFAULT_LORA, loraStreams, wrapWithLora } from '../../src/relora/wrap.ts';
import { trainStep } from '../../src/train/step.ts';

if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;

const tiny: LlamaConfig = { vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numLayers: 2, maxSeqLen: 32, rmsNormEps: 1e-6, ropeTheta: 10000 };

function ids(seed: number): Tensor {
  const u = new Float32Array(2 * 16);
  new RandomStream(seed).uniform(u);
  return Tensor.from(Int32Array.from(u, (x) => Math.floor(x * tiny.vocabSize)), [2, 16]);
}

function train(backend: 'native' | 'webgpu', precision: Precision) {
  setBackend(backend);
  return withPrecision(precision, () => {
    const model = new LlamaForCausalLM(tiny).initWeights(5);
    wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 4, dropout: 0.1 }, loraStreams(5));
    const opt = new AdamW(model.namedTrainableParameters(), { lr: 1e-2, weightDecay: 0.01 });
    const losses: number[] = [], norms: number[] = [];
    for (let s = 0; s < 4; s++) {
      const batches = [ids(10 * s), ids(10 * s + 1)];
      const r = trainStep(model, opt, batches, 1e-2, 1);
      for (const b of batches) b.dispose();
      losses.push(r.loss);
      norms.push(r.gradNorm);
    }
    opt.dispose();
    model.dispose();
    return { losses, norms };
  });
}

test('webgpu bf16 training matches native bf16: losses and gradient norms over 4 updates', () => {
  const native = train('native', 'bf16'), gpu = train('webgpu', 'bf16'), fp32 = train('native', 'fp32');
  setBackend('native');
  const gap = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.max(1, Math.abs(b[i]))));
  const lossGap = gap(gpu.losses, native.losses), normGap = gap(gpu.norms, native.norms), fp32Gap = gap(fp32.norms, native.norms);
  assert.ok(lossGap <= 2e-4, `losses: webgpu ${gpu.losses.join(', ')}, native ${native.losses.join(', ')}`);
  assert.ok(normGap <= 2e-3, `gradient norms: webgpu ${gpu.norms.join(', ')}, native ${native.norms.join(', ')}`);
  assert.ok(normGap < fp32Gap / 4, `webgpu vs native ${normGap}, bf16 vs fp32 ${fp32Gap}: the webgpu run is not in bf16`);
});

test('webgpu gemmBf16ToBf16 writes what js writes and keeps the values the device holds between C\'s rows', () => {
  const [M, N, Kd, ldc] = [5, 6, 8, 9];
  const values = (n: number, seed: number) => {
    const x = new Float32Array(n);
    new RandomStream(seed).uniform(x, -2, 2);
    return x;
  };
  const pack = (x: Float32Array) => {
    const p = new Float32Array((x.length + 1) >> 1);
    jsKernels.toBf16(x, p, x.length);
    return p;
  };
  const A = pack(values(M * Kd, 1)), B = pack(values(N * Kd, 2)), C0 = values((M * ldc + 1) >> 1, 3);
  const want = C0.slice();
  jsKernels.gemmBf16ToBf16(false, true, M, N, Kd, 1, A, Kd, B, Kd, want, ldc);
  for (const whole of [true, false]) {
    setBackend('webgpu');
    const k = K();
    // C's current values made by a device kernel, so only the device holds them.
    const c = Tensor.empty([C0.length + (whole ? 0 : 2)], false), cIn = Tensor.from(C0);
    k.scale(cIn.buf, 1, c.buf, C0.length);
    const view = whole ? c.buf : c.buf.subarray(0, C0.length);
    k.gemmBf16ToBf16(false, true, M, N, Kd, 1, Tensor.from(A).buf, Kd, Tensor.from(B).buf, Kd, view, ldc);
    const got = new Uint16Array(Float32Array.from(c.data.subarray(0, C0.length)).buffer);
    setBackend('native');
    assert.deepEqual(got, new Uint16Array(want.buffer), `${whole ? 'whole buffer' : 'a view'}: product and gaps`);
  }
});

test('webgpu toBf16Rows writes what js writes and keeps the values the device holds between rows', () => {
  const [rows, cols, ld] = [4, 5, 8];
  const src = new Float32Array(rows * cols), dst0 = new Float32Array(((rows - 1) * ld + cols + 1) >> 1);
  new RandomStream(4).uniform(src, -2, 2);
  new RandomStream(5).uniform(dst0, -2, 2);
  const want = dst0.slice();
  jsKernels.toBf16Rows(src, want, rows, cols, ld);
  setBackend('webgpu');
  const k = K();
  // dst's current values made by a device kernel, so only the device holds them.
  const dst = Tensor.empty([dst0.length], false), dIn = Tensor.from(dst0);
  k.scale(dIn.buf, 1, dst.buf, dst0.length);
  k.toBf16Rows(Tensor.from(src).buf, dst.buf, rows, cols, ld);
  // Read through a device kernel: the device must see what was written.
  const out = Tensor.empty([dst0.length], false);
  k.scale(dst.buf, 1, out.buf, dst0.length);
  const got = new Uint16Array(Float32Array.from(out.data).buffer);
  setBackend('native');
  assert.deepEqual(got, new Uint16Array(want.buffer), 'rows and the gaps between them');
});
