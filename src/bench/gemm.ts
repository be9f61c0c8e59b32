/** GEMM throughput through the public matmul op, next to the library called directly from C. */
import { K } from '../engine/backend.ts';
import { benchGemmDirect } from '../engine/backends/native.ts';
import { matmul } from '../engine/ops/matmul.ts';
import { RandomStream } from '../engine/rng.ts';
import { noGrad, scope, Tensor } from '../engine/tensor.ts';
import { spread } from './stats.ts';

export interface GemmRecord {
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  gflops: number;
  gflops_direct: number | null;
}

export const GEMM_SHAPES: [number, number, number][] = [
  [512, 512, 512],
  [1024, 1024, 1024],
  [4096, 512, 1536],
];

/** Median GFLOP/s of C = op(A)·op(B) through `matmul`, over `reps` timed calls after warm-up. */
export function gemmThroughput(m: number, k: number, n: number, transA: boolean, transB: boolean, reps: number): number {
  const rng = new RandomStream(7);
  const a = new Float32Array(m * k), b = new Float32Array(k * n);
  rng.uniform(a, -1, 1);
  rng.uniform(b, -1, 1);
  const A = Tensor.from(a, transA ? [k, m] : [m, k]);
  const B = Tensor.from(b, transB ? [n, k] : [k, n]);
  const times: number[] = [];
  noGrad(() => {
    for (let i = 0; i < reps + 2; i++) {
      const t0 = process.hrtime.bigint();
      scope(() => { matmul(A, B, { transA, transB }); });
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      if (i >= 2) times.push(dt);
    }
  });
  return (2 * m * n * k) / spread(times).median / 1e9;
}

export function benchGemm(reps: number): GemmRecord[] {
  const out: GemmRecord[] = [];
  const native = K().name === 'native';
  for (const [m, k, n] of GEMM_SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const gflops = gemmThroughput(m, k, n, transA, transB, reps);
        const direct = native ? benchGemmDirect(transA, transB, m, n, k, reps) : null;
        out.push({ m, k, n, transA, transB, gflops, gflops_direct: direct });
      }
    }
  }
  return out;
}
