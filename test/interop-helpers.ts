/** Shared pieces of the interop tests: small models, temporary folders, logits, fake run folders. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../src/data/tokenizer-files.ts';
import type { Tokenizer } from '../src/data/tokenizer.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { noGrad, scope, Tensor } from '../src/engine/tensor.ts';
import { configToJSON, type LlamaConfig } from '../src/nn/config.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { saveCheckpoint } from '../src/train/checkpoint.ts';
import { resolveConfig, type TrainConfigInput } from '../src/train/config.ts';

export const interopFixture = (name: string): string => fileURLToPath(new URL(`./fixtures/interop/${name}`, import.meta.url));
export const BPE_TOKENIZER = fileURLToPath(new URL('./fixtures/data/byte-level-bpe/tokenizer.json', import.meta.url));

export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `relora-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function randomIds(B: number, T: number, V: number, seed: number): Tensor {
  const u = new Float32Array(B * T);
  new RandomStream(seed).uniform(u);
  return Tensor.from(Int32Array.from(u, (x) => Math.floor(x * V)), [B, T]);
}

export function logitsOf(model: LlamaForCausalLM, ids: Tensor): Float32Array {
  return noGrad(() => scope(() => Float32Array.from(model.eval().forward(ids).data)));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Random weights large enough that logits are well spread (norm weights perturbed from 1). */
export function randomModel(cfg: LlamaConfig, seed: number, std = 0.15): LlamaForCausalLM {
  const model = new LlamaForCausalLM(cfg);
  const rng = new RandomStream(seed);
  for (const [name, t] of model.namedParameters()) {
    rng.normal(t.data, name.endsWith('norm.weight') ? 1 : 0, name.endsWith('norm.weight') ? 0.1 : std);
  }
  return model.eval();
}

/** Greedy continuation by a full forward pass over the whole sequence at every step (no cache). */
export function greedyFullRecompute(model: LlamaForCausalLM, prompt: number[], n: number): number[] {
  const seq = [...prompt];
  const V = model.config.vocabSize;
  for (let i = 0; i < n; i++) {
    const logits = logitsOf(model, Tensor.from(Int32Array.from(seq), [1, seq.length]));
    const last = logits.subarray((seq.length - 1) * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
    seq.push(best);
  }
  return seq.slice(prompt.length);
}

export async function bpeTokenizer(): Promise<Tokenizer> {
  return loadTokenizer(BPE_TOKENIZER);
}

/**
 * A run folder as the trainer leaves it: config.json, tokenizer.json, optionally model.json, and
 * one checkpoint of `model` (LoRA factors included when it is wrapped).
 */
export async function fakeRun(
  runDir: string, model: LlamaForCausalLM, tokenizer: Tokenizer,
  runConfig: TrainConfigInput, opts: { modelJson?: boolean } = {},
): Promise<string> {
  const resolved = resolveConfig({ mode: 'lora', steps: 10, warm_start_steps: 2, ...runConfig }, 'test run config');
  writeFileSync(join(runDir, 'config.json'), JSON.stringify(resolved));
  writeFileSync(join(runDir, 'tokenizer.json'), JSON.stringify(tokenizer.toJSON()));
  if (opts.modelJson) writeFileSync(join(runDir, 'model.json'), JSON.stringify(configToJSON(model.config)));
  const state = {
    version: 1, step: 7, phase: 'relora' as const, phase_step: 3, optimizer_steps: 7, counters: { merges: 0, resets: 0 },
    tokens: 0, elapsed: 0, skipped: 0, sampler: { epoch: 0, position: 0 }, rng: {},
  };
  return saveCheckpoint(runDir, { model: model.stateDict(), optimizer: {}, state }, 2);
}
