/**
 * ReLoRA for your own training loop (Lialin et al., ReLoRA, ICLR 2024; docs/method.md): wrap
 * a model's projections with LoRA layers, train, and every few hundred updates merge the
 * factors into the frozen weights, re-draw them and prune their optimizer moments.
 */
import { RandomStream } from '../engine/rng.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { PROJECTIONS, type ProjectionName } from '../nn/llama.ts';
import type { AdamW } from '../optim/adamw.ts';
import type { LoraLinear } from '../relora/lora-linear.ts';
import { parseResetKind } from '../relora/prune.ts';
import { mergeAll, restart } from '../relora/restart.ts';
import { emptyRestartCounters, type RestartCounters } from '../relora/restarts.ts';
import { loraStreams, wrapWithLora, type LoraStreams } from '../relora/wrap.ts';

/** Options of {@link wrapWithReLoRA}. */
export interface ReLoRAOptions {
  /** LoRA rank r. */
  rank: number;
  /** LoRA alpha; the update is scaled by alpha / r. Default 32. */
  alpha?: number;
  /** Dropout on the LoRA input during training. Default 0.1. */
  dropout?: number;
  /** Which projections get LoRA factors. Default all seven (q, k, v, o, gate, up, down). */
  targetModules?: readonly ProjectionName[];
  /** Seeds the draws of A (at wrapping and every merge), the dropout masks and the pruning masks. Default 0. */
  seed?: number;
  /** Form the frozen weights' products in bfloat16 with fp32 accumulation (W stays fp32). Default false. */
  frozenBf16?: boolean;
}

/** A model wrapped for ReLoRA: what {@link mergeAndReinit} acts on. */
export interface ReLoRA {
  /** The wrapped model (changed in place: its target projections are now LoRA layers). */
  readonly model: LlamaForCausalLM;
  /** Every LoRA layer by parameter path, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly layers: ReadonlyMap<string, LoraLinear>;
  /** Merges (and optimizer resets) done so far. */
  readonly counters: Readonly<RestartCounters>;
}

class ReLoRAWrapping implements ReLoRA {
  readonly counters = emptyRestartCounters();
  constructor(
    readonly model: LlamaForCausalLM,
    readonly layers: Map<string, LoraLinear>,
    readonly streams: LoraStreams,
    readonly prune: RandomStream,
  ) {}
}

/**
 * Replaces every target projection of `model` by a LoRA layer, in place: W is frozen (no
 * gradient, no optimizer state), A is drawn kaiming-uniform and B is zero, so the model's
 * output does not change. Embeddings, norms and lm_head stay trainable. Give the optimizer
 * `model.namedTrainableParameters()` after wrapping.
 */
export function wrapWithReLoRA(model: LlamaForCausalLM, options: ReLoRAOptions): ReLoRA {
  const seed = options.seed ?? 0;
  const streams = loraStreams(seed);
  const layers = wrapWithLora(model, {
    rank: options.rank,
    alpha: options.alpha ?? 32,
    dropout: options.dropout ?? 0.1,
    frozenBf16: options.frozenBf16,
    targetModules: options.targetModules ?? PROJECTIONS,
  }, streams);
  return new ReLoRAWrapping(model, layers, streams, RandomStream.named(seed, 'prune'));
}

/** Options of {@link mergeAndReinit}. */
export interface MergeOptions {
  /** The optimizer training the LoRA factors: their Adam moments are pruned (ReLoRA's optimizer reset). */
  optimizer?: AdamW;
  /**
   * How the moments are pruned: `reference` (random pruning of 99.9 % of each moment, as the
   * paper's reference code; `reset` is its older name), `shared` (one mask for both moments),
   * `zero`, or `random:p`, `shared:p`, `magnitude:p` with p in [0, 1). Default `shared`, as
   * `relora train` (see docs/method.md, "Optimizer reset").
   */
  reset?: string;
}

/**
 * A ReLoRA restart: W += (alpha/r)·B·A for every LoRA layer, then A is re-drawn and B zeroed (the
 * model's output is unchanged), and with an `optimizer` the LoRA factors' moments are pruned.
 * Pair it with a learning-rate schedule that restarts with a short warm-up
 * (`makeSchedule({ scheduler: 'cosine_restarts', cycleLength, … })`).
 */
export function mergeAndReinit(relora: ReLoRA, options: MergeOptions = {}): void {
  if (!(relora instanceof ReLoRAWrapping)) throw new Error('mergeAndReinit: expected the object wrapWithReLoRA returned');
  const kind = parseResetKind(options.reset ?? 'shared');
  if (options.optimizer) {
    restart(relora.layers, options.optimizer, kind, { init: relora.streams.init, prune: relora.prune }, relora.counters);
  } else {
    mergeAll(relora.layers, relora.streams.init);
    relora.counters.merges++;
  }
}
