/**
 * One optimizer update: forward + backward over the micro-batches (gradient accumulation, each
 * micro-batch's loss weighted 1/n), global-norm clipping, AdamW step. Everything the step
 * allocates is scoped, so memory stays flat across steps.
 */
import { scope, toHostAll, type Tensor } from '../engine/tensor.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { clipScale, startGradNorm, type AdamW } from '../optim/adamw.ts';
import type { GradientSync } from '../parallel/gradients.ts';

export interface StepResult {
  /** Mean loss over the micro-batches. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** False when the loss or the gradient was not finite and the update was skipped. */
  applied: boolean;
}

/**
 * `beforeUpdate` runs between the backward pass and the optimizer step (the trainer's fault
 * injection for "killed mid-update"). With `gradients` (data parallel), the micro-batches are this
 * process's share of the batch, and gradients and loss are averaged over the processes before
 * clipping, so the norm clipped is the global one and every process takes the same step (with a
 * sharded optimizer, each its share of it, and then they exchange the updated weights).
 * `beforeMicroBatch` runs before each micro-batch's forward pass (data parallel: dropout placement).
 * A single process passes no `gradients` (on a device backend, that saves the update a readback).
 */
export function trainStep(
  model: LlamaForCausalLM, optimizer: AdamW, microBatches: Tensor[], lr: number, clipNorm: number, beforeUpdate?: () => void,
  gradients?: GradientSync, beforeMicroBatch?: (index: number) => void,
): StepResult {
  if (microBatches.length === 0) throw new Error('trainStep: no micro-batches given');
  optimizer.zeroGrad();
  model.train();
  const n = microBatches.length;
  const losses: Tensor[] = [];
  for (const [index, ids] of microBatches.entries()) {
    beforeMicroBatch?.(index);
    losses.push(scope(() => {
      const l = model.loss(ids);
      // Seeded with 1/n rather than through scale(l, 1/n): the same float, and no device readback of it.
      l.backward(1 / n);
      return l;
    }));
  }
  const params = optimizer.params.map(([, t]) => t);
  // In one process the gradients are final now, so on a device backend their sums of squares are
  // computed there and come back together with the micro-batches' losses: one readback per update.
  // Data parallel averages the gradients first, so the norm is read back on its own.
  const pendingNorm = gradients ? null : startGradNorm(params);
  toHostAll(pendingNorm?.deviceSums ? [...losses, pendingNorm.deviceSums] : losses);
  let loss = 0;
  for (const l of losses) {
    loss += l.item();
    l.dispose();
  }
  loss /= n;
  if (gradients) loss = gradients.average(params, loss);
  // A non-finite element anywhere makes the sum of squares, and so the norm, non-finite.
  const gradNorm = gradients ? gradients.norm(params) : pendingNorm!.norm();
  beforeUpdate?.();
  if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) return { loss, gradNorm, applied: false };
  // Clipping is the update's gradient factor: the same values as scaling the gradients first.
  optimizer.step(lr, clipScale(gradNorm, clipNorm));
  gradients?.shareWeights(params);
  return { loss, gradNorm, applied: true };
}
