/**
 * Float32 buffer pool. A training step allocates the same sizes every time; recycling buffers by
 * exact length keeps the steady-state step free of allocation (and of GC pauses that would take
 * a core away from the GEMM), and keeps memory flat.
 */
const free = new Map<number, Float32Array[]>();
let pooledBytes = 0;

/** A buffer of exactly n floats; zero-filled when `zero` is true (recycled buffers hold garbage). */
export function acquire(n: number, zero: boolean): Float32Array {
  const list = free.get(n);
  const buf = list?.pop();
  if (buf) {
    pooledBytes -= n * 4;
    if (zero) buf.fill(0);
    return buf;
  }
  return new Float32Array(n);
}

export function release(buf: Float32Array): void {
  let list = free.get(buf.length);
  if (!list) {
    list = [];
    free.set(buf.length, list);
  }
  list.push(buf);
  pooledBytes += buf.length * 4;
}

/** Bytes currently parked in the pool (for diagnostics and tests). */
export function pooledBufferBytes(): number {
  return pooledBytes;
}

/** Drop every pooled buffer (e.g. between phases whose shapes differ). */
export function clearPool(): void {
  free.clear();
  pooledBytes = 0;
}
