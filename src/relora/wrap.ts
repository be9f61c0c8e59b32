/**
 * Training modes (docs/method.md, "LoRA layer"): `full` trains every weight; `lora` and `relora` wrap the target
 * projections with LoraLinear (W frozen); embeddings, RMSNorm weights and lm_head stay trainable.
 * `relora` additionally merges and restarts (see restart.ts).
 */
import { RandomStream } from '../engine/rng.ts';
import { Linear } from '../nn/layers.ts';
import { PROJECTIONS, type LlamaForCausalLM, type ProjectionName } from '../nn/llama.ts';
import { LoraLinear, validateLoraOptions, type LoraOptions } from './lora-linear.ts';

export type TrainingMode = 'full' | 'lora' | 'relora';
export const TRAINING_MODES: readonly TrainingMode[] = ['full', 'lora', 'relora'];

export interface WrapOptions extends LoraOptions {
  targetModules: readonly string[];
}

export const DEFAULT_LORA: WrapOptions = { rank: 128, alpha: 32, dropout: 0.1, targetModules: PROJECTIONS };

export function parseMode(s: string): TrainingMode {
  if ((TRAINING_MODES as readonly string[]).includes(s)) return s as TrainingMode;
  throw new Error(`mode: unknown value "${s}"; expected one of ${TRAINING_MODES.join(', ')}`);
}

export function validateTargets(targets: readonly string[]): ProjectionName[] {
  if (targets.length === 0) throw new Error(`target modules: the list is empty; choose from ${PROJECTIONS.join(', ')}`);
  for (const t of targets) {
    if (!(PROJECTIONS as readonly string[]).includes(t)) throw new Error(`target modules: unknown module "${t}"; choose from ${PROJECTIONS.join(', ')}`);
  }
  return targets as ProjectionName[];
}

/** Random streams a LoRA-wrapped model draws from: A re-initialisation and LoRA dropout. */
export interface LoraStreams {
  init: RandomStream;
  dropout: RandomStream;
}

export function loraStreams(seed: number): LoraStreams {
  return { init: RandomStream.named(seed, 'lora_init'), dropout: RandomStream.named(seed, 'lora_dropout') };
}

/** Replace every target projection of `model` with a LoraLinear (in place). Returns them by name. */
export function wrapWithLora(model: LlamaForCausalLM, opts: WrapOptions, streams: LoraStreams): Map<string, LoraLinear> {
  validateLoraOptions(opts);
  const targets = validateTargets(opts.targetModules);
  const wrapped = new Map<string, LoraLinear>();
  for (const [path, m] of model.namedModules()) {
    for (const [childName, child] of m.namedChildren()) {
      if (!(child instanceof Linear) || !(targets as string[]).includes(childName)) continue;
      const name = `${path}.${childName}`;
      const lora = new LoraLinear(child, opts, streams.init, streams.dropout, name);
      m.replaceModule(childName, lora);
      wrapped.set(name, lora);
    }
  }
  return wrapped;
}

/** Every LoraLinear in the model, by name. */
export function loraLayers(model: LlamaForCausalLM): Map<string, LoraLinear> {
  const out = new Map<string, LoraLinear>();
  for (const [path, m] of model.namedModules()) if (m instanceof LoraLinear) out.set(path, m);
  return out;
}
