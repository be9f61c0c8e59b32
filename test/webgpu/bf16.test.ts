/**
 * bf16 mixed precision on `--backend webgpu`: its bf16 products, attention and fused loss run on
 * host copies (the js emulation) between device kernels, and a ReLoRA model's updates in bf16
 * match the native backend's (oneDNN, or its emulation) — the losses (each after the updates
 * before it) and the gradient norms — far closer than bf16 is to fp32. In CI the adapter is SwiftShader.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';

import { setBackend } from '../../src/engine/backend.ts';
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
