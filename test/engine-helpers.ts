/** Small helpers the engine tests share. */
import { RandomStream } from '../src/engine/rng.ts';
import { parameter, type Tensor } from '../src/engine/tensor.ts';

/** A parameter filled from U(−scale, scale) with its own seed. */
export function param(shape: number[], seed: number, requiresGrad = true, scale = 1): Tensor {
  const t = parameter(shape, requiresGrad);
  new RandomStream(seed).uniform(t.data, -scale, scale);
  return t;
}

/** Largest absolute difference over the largest magnitude of b. */
export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0, mag = 1e-6;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    mag = Math.max(mag, Math.abs(b[i]));
  }
  return diff / mag;
}
