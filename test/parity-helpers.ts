/** Loading the committed PyTorch fixtures (tools/reference/) into relora objects. */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { parseSafetensors, type SafetensorsBuffer } from '../src/io/safetensors.ts';
import type { LlamaConfig } from '../src/nn/config.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export function openFixture(name: string): SafetensorsBuffer {
  return parseSafetensors(readFileSync(fixture(name)), name);
}

export function fixtureJson<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(fixture(name), 'utf8')) as T;
}

export const PARITY_CONFIG: LlamaConfig = {
  vocabSize: 64, hiddenSize: 32, intermediateSize: 88, numHeads: 4, numLayers: 2, maxSeqLen: 64, rmsNormEps: 1e-6, ropeTheta: 10000,
};

export function parityModel(): LlamaForCausalLM {
  const st = openFixture('parity_model.safetensors');
  const model = new LlamaForCausalLM(PARITY_CONFIG);
  const dict: Record<string, Float32Array> = {};
  for (const n of st.names()) dict[n] = st.readFloat32(n);
  model.loadStateDict(dict, true, 'parity_model.safetensors');
  return model;
}

/** max |a-b| / max(|b|max, floor): relative error against the reference's scale. */
export function relError(a: Float32Array, b: Float32Array, floor = 1e-6): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0, scale = floor;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/**
 * Every `final.*` tensor of a fixture within 1e-4 of its scale, or within 4× the gap between the
 * reference and its own float64 rerun (`fp64_final_max_abs_diff`): right after a restart Adam's
 * first step on gradients of ~1e-8 is ≈ lr·sign(g), which fp32 rounding alone decides.
 */
export function assertFinalWeights(model: LlamaForCausalLM, fx: SafetensorsBuffer, fp64Gap: Record<string, number>): void {
  let checked = 0;
  for (const [name, p] of model.namedParameters()) {
    const ref = fx.readFloat32(`final.${name}`);
    let diff = 0, scale = 1e-6;
    for (let i = 0; i < ref.length; i++) {
      diff = Math.max(diff, Math.abs(p.data[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    const allowed = Math.max(1e-4 * scale, 4 * fp64Gap[`final.${name}`]);
    assert.ok(diff <= allowed, `final ${name}: max abs diff ${diff}, allowed ${allowed}`);
    checked++;
  }
  assert.equal(checked, fx.names().filter((n) => n.startsWith('final.')).length);
}
