/**
 * The ReLoRA linear layer (docs/method.md, "LoRA layer"): frozen W plus s·B·A.
 *   y = x·Wᵀ + s · ((dropout(x)·Aᵀ)·Bᵀ),  s = alpha / r
 * A ~ kaiming-uniform(a = √5) = U(−1/√in, 1/√in), B = 0, so wrapping changes nothing.
 * W gets no gradient buffer and its dW product is never computed.
 */
import { K } from '../engine/backend.ts';
import * as ops from '../engine/ops/index.ts';
import type { RandomStream } from '../engine/rng.ts';
import { noGrad, type Tensor } from '../engine/tensor.ts';
import { Linear } from '../nn/layers.ts';
import { Module } from '../nn/module.ts';

export interface LoraOptions {
  rank: number;
  alpha: number;
  dropout: number;
  /**
   * Compute the frozen W's products in bfloat16 (fp32 accumulation; AMX where the CPU has it).
   * Faster, not bit-compatible with fp32 training; W stays fp32. Default false.
   */
  frozenBf16?: boolean;
}

export function validateLoraOptions(o: LoraOptions, inFeatures?: number, outFeatures?: number, where = 'lora'): void {
  if (!Number.isInteger(o.rank) || o.rank < 1) throw new Error(`${where}: rank must be a positive integer, got ${o.rank}`);
  if (!(o.alpha > 0)) throw new Error(`${where}: alpha must be > 0, got ${o.alpha}`);
  if (!(o.dropout >= 0 && o.dropout < 1)) throw new Error(`${where}: dropout must be in [0, 1), got ${o.dropout}`);
  if (inFeatures !== undefined && outFeatures !== undefined && o.rank > Math.min(inFeatures, outFeatures)) {
    throw new Error(`${where}: rank ${o.rank} exceeds min(in, out) = min(${inFeatures}, ${outFeatures}) = ${Math.min(inFeatures, outFeatures)}`);
  }
}

export class LoraLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly rank: number;
  readonly scaling: number;
  readonly dropoutP: number;
  readonly frozenBf16: boolean;
  /**
   * Sequences of the micro-batch that come before this process's in a data-parallel job, when
   * one process would compute them together: the dropout mask continues theirs (0 otherwise).
   */
  dropoutRowOffset = 0;
  private readonly dropoutRng: RandomStream;
  /** bf16 copy of the frozen W between merges, for bf16 products (made on first use). */
  private readonly frozenCopy = new ops.FrozenBf16Copy();

  /** Takes over `base`'s weight (frozen from now on). */
  constructor(base: Linear, opts: LoraOptions, initRng: RandomStream, dropoutRng: RandomStream, name = 'lora') {
    super();
    validateLoraOptions(opts, base.inFeatures, base.outFeatures, name);
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.rank = opts.rank;
    this.scaling = opts.alpha / opts.rank;
    this.dropoutP = opts.dropout;
    this.frozenBf16 = opts.frozenBf16 ?? false;
    this.dropoutRng = dropoutRng;
    const w = base.weight;
    w.requiresGrad = false;
    this.registerParameter('weight', w);
    this.registerModule('lora_A', new Linear(this.inFeatures, this.rank));
    this.registerModule('lora_B', new Linear(this.rank, this.outFeatures));
    this.resetLora(initRng);
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  get loraA(): Tensor {
    return this.child<Linear>('lora_A').weight;
  }

  get loraB(): Tensor {
    return this.child<Linear>('lora_B').weight;
  }

  /** A ← kaiming-uniform(a=√5) draw, B ← 0. */
  resetLora(rng: RandomStream): void {
    const bound = 1 / Math.sqrt(this.inFeatures);
    rng.uniform(this.loraA.overwrite(), -bound, bound);
    this.loraB.overwrite().fill(0);
  }

  /** One fused op (engine/ops/lora-linear.ts): x·Aᵀ first, no dW for the frozen W. */
  forward(x: Tensor): Tensor {
    // The mask key is drawn exactly when ops.dropout would draw it, so masks match it.
    const dropout = this.training && this.dropoutP > 0
      ? { p: this.dropoutP, key: this.dropoutRng.maskKey(), offset: this.dropoutRowOffset * (x.size / x.shape[0]) }
      : null;
    return ops.loraLinear(x, this.weight, this.loraA, this.loraB, this.scaling, dropout, { frozenBf16: this.frozenBf16, frozenCopy: this.frozenCopy });
  }

  /** W += s·B·A in fp32, then re-draw A and zero B: the layer's output does not change. */
  mergeAndReinit(rng: RandomStream): void {
    noGrad(() => {
      K().gemm(false, false, this.outFeatures, this.inFeatures, this.rank, this.scaling,
        this.loraB.buf, this.rank, 0, this.loraA.buf, this.inFeatures, 0,
        1, this.weight.buf, this.inFeatures, 0, 1);
    });
    this.frozenCopy.invalidate();
    this.resetLora(rng);
  }

  /** W's values changed in place (loaded): its bf16 copy is rounded again when next used. */
  override parametersWritten(): void {
    this.frozenCopy.invalidate();
  }

  /** W + s·B·A as a new array (for export without touching the layer). */
  mergedWeight(): Float32Array {
    const out = Float32Array.from(this.weight.data);
    K().gemm(false, false, this.outFeatures, this.inFeatures, this.rank, this.scaling,
      this.loraB.data, this.rank, 0, this.loraA.data, this.inFeatures, 0, 1, out, this.inFeatures, 0, 1);
    return out;
  }
}
