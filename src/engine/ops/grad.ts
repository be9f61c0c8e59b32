/**
 * Where an op's backward puts an input's gradient.
 *
 * `gradBuffer` (tensor.ts) hands out a zero-filled buffer to accumulate into. When the gradient
 * does not exist yet, `gradSlot` instead creates it without clearing it and says so (`fresh`):
 * the op then WRITES its contribution (GEMM with beta 0, a copy, an elementwise product) instead
 * of clearing the buffer and adding to it — one pass over memory instead of three. A caller that
 * gets `fresh` must write every element before anything reads the buffer; the next contribution
 * (another consumer of the same tensor) sees `fresh: false` and accumulates.
 */
import { K } from '../backend.ts';
import { Tensor, untracked } from '../tensor.ts';

export interface GradSlot {
  data: Float32Array;
  /** The contents are garbage: write, do not accumulate. */
  fresh: boolean;
}

export function gradSlot(t: Tensor): GradSlot | null {
  if (!t.requiresGrad) return null;
  if (t.grad) return { data: t.grad.buf, fresh: false };
  // Same placement as gradBuffer: a leaf's (parameter's) gradient outlives every scope.
  const make = (): Tensor => Tensor.empty(t.shape, false);
  const g = t.node === null ? untracked(make) : make();
  g.name = t.name ? `${t.name}.grad` : undefined;
  t.grad = g;
  return { data: g.buf, fresh: true };
}

/** GEMM beta for a gradient slot: overwrite a fresh one, accumulate otherwise. */
export function betaFor(slot: GradSlot): number {
  return slot.fresh ? 0 : 1;
}

/**
 * The gradient buffers of several inputs for a kernel that either writes all of them or adds to
 * all of them: it writes (`accumulate` false) when every one is fresh — the usual case, the inputs
 * feeding nothing else — and otherwise the fresh ones are cleared and it adds. Null for an input
 * that needs no gradient.
 */
export function gradSlots(inputs: readonly Tensor[]): { grads: (Float32Array | null)[]; accumulate: boolean } {
  const slots = inputs.map(gradSlot);
  const accumulate = slots.some((s) => s && !s.fresh);
  if (accumulate) for (const [i, s] of slots.entries()) if (s?.fresh) K().fill(s.data, 0, inputs[i].size);
  return { grads: slots.map((s) => s?.data ?? null), accumulate };
}

/** A gradient buffer to accumulate into: like gradBuffer, but a fresh one is cleared by the
 * backend's (threaded) fill. For kernels that can only accumulate. */
export function gradZeroed(t: Tensor): Float32Array | null {
  const slot = gradSlot(t);
  if (slot?.fresh) K().fill(slot.data, 0, t.size);
  return slot ? slot.data : null;
}
