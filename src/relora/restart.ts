/**
 * A ReLoRA restart (docs/method.md, "Merge and re-initialisation" and "Optimizer reset"): merge
 * every LoRA factor into its frozen weight and re-draw it, then reset the Adam moments of the
 * LoRA factors as `optimizer_reset` says (the step count and every other parameter's state
 * untouched).
 */
import type { RandomStream } from '../engine/rng.ts';
import { toHostAll } from '../engine/tensor.ts';
import type { AdamW } from '../optim/adamw.ts';
import type { LoraLinear } from './lora-linear.ts';
import { resetMomentsInPlace, type ResetKind } from './prune.ts';
import type { RestartCounters } from './restarts.ts';

export interface RestartStreams {
  /** Re-draws of A at merges. */
  init: RandomStream;
  /** Random pruning masks. */
  prune: RandomStream;
}

export function mergeAll(layers: Map<string, LoraLinear>, init: RandomStream): void {
  for (const layer of layers.values()) layer.mergeAndReinit(init);
}

/**
 * Reset the moments of every `…lora_A.weight` / `…lora_B.weight` the optimizer holds. Returns how
 * many tensors. A process of a sharded optimizer (partition.ts) keeps no moments for the tensors
 * other processes own, but draws their masks all the same (an empty tensor advances the stream
 * as a full one does), so every process's stream, and each tensor's mask, is the unsharded one.
 */
export function resetLoraMoments(optimizer: AdamW, kind: ResetKind, rng: RandomStream): number {
  let n = 0;
  const none = new Float32Array(0);
  // From a GPU: every LoRA moment in one readback, rather than one per tensor.
  toHostAll(optimizer.params.flatMap(([name]) => {
    const s = /\.lora_[AB]\.weight$/.test(name) ? optimizer.state.get(name) : undefined;
    return s ? [s.m, s.v] : [];
  }));
  for (const [name] of optimizer.params) {
    if (!/\.lora_[AB]\.weight$/.test(name)) continue;
    const s = optimizer.state.get(name);
    resetMomentsInPlace(s?.m.data ?? none, s?.v.data ?? none, kind, rng);
    if (s) n++;
  }
  return n;
}

export function restart(
  layers: Map<string, LoraLinear>, optimizer: AdamW, kind: ResetKind, streams: RestartStreams, counters: RestartCounters,
): void {
  mergeAll(layers, streams.init);
  counters.merges++;
  resetLoraMoments(optimizer, kind, streams.prune);
  counters.resets++;
}
