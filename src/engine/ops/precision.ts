/**
 * The precision matrix products run in, as PyTorch's CPU autocast sets it: 'fp32', or 'bf16'
 * mixed precision — every product (projections, LoRA factors, attention, the output head) takes
 * bfloat16 operands and accumulates in fp32, while norms, softmax, the loss, residual adds, the
 * optimizer and the weights themselves stay fp32. Ops read it when they run forward and keep it
 * for their backward, so a step's backward matches its forward even if the setting changes.
 */
export type Precision = 'fp32' | 'bf16';

/** The values `precision` accepts. */
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

let current: Precision = 'fp32';

/** The precision products run in now. */
export function matmulPrecision(): Precision {
  return current;
}

/** Sets the precision of the products that follow; returns the previous one. */
export function setMatmulPrecision(p: Precision): Precision {
  if (p !== 'fp32' && p !== 'bf16') throw new Error(`precision: expected one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(p)}`);
  const prev = current;
  current = p;
  return prev;
}

/** Runs fn with products in precision p, then restores the previous setting (even on a throw). */
export function withPrecision<T>(p: Precision, fn: () => T): T {
  const prev = setMatmulPrecision(p);
  try {
    return fn();
  } finally {
    current = prev;
  }
}
