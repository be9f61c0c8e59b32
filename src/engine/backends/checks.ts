/** Argument checks the TypeScript kernels share: a bad call throws naming the kernel and the argument. */

/** Throws unless arr holds at least n elements. */
export function need(kernel: string, what: string, arr: ArrayLike<number>, n: number): void {
  if (arr.length < n) {
    throw new Error(`${kernel}: ${what} has ${arr.length} elements, needs at least ${n}`);
  }
}

/** Throws unless every dimension is a non-negative integer. */
export function positiveInts(kernel: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${kernel}: ${k} must be a non-negative integer, got ${v}`);
  }
}
