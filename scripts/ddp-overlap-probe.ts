/**
 * mpirun --oversubscribe -np 2 node --import tsx scripts/ddp-overlap-probe.ts [--mib 16] [--repeats 5]
 *
 * Can an all-reduce progress while this process computes? Starting a bucket's all-reduce during
 * backward (as PyTorch DDP does) only pays when something moves the bytes while the rank's own
 * thread is busy: a NIC with RDMA, or an MPI progress thread on a spare core. Each rank times,
 * with one compute thread: a GEMM workload alone, a blocking all-reduce of one bucket alone, and
 * the bucket's non-blocking all-reduce started before the same GEMMs and waited for after them.
 * Overlap would show as "started, then computed" below the sum of the two alone.
 */
import { parseArgs } from 'node:util';
import { K, setBackend } from '../src/engine/backend.ts';
import { median } from '../src/bench/table.ts';
import { worldCommunicator } from '../src/parallel/launch.ts';
import { scriptOptions } from '../src/cli/errors.ts';

const { values: v } = scriptOptions(() => parseArgs({ options: { mib: { type: 'string', default: '16' }, repeats: { type: 'string', default: '5' } } }));
const comm = worldCommunicator();
setBackend('native', 1);
const bucket = new Float32Array((Number(v.mib) * 2 ** 20) / 4).fill(1);
const n = 384, a = new Float32Array(n * n).fill(0.5), b = new Float32Array(n * n).fill(0.25), c = new Float32Array(n * n);
let gemms = 1;
const compute = (): void => {
  for (let i = 0; i < gemms; i++) K().gemm(false, false, n, n, n, 1, a, n, 0, b, n, 0, 0, c, n, 0, 1);
};
const time = async (fn: () => void): Promise<number> => {
  await comm.barrier();
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
};
// As many GEMMs as take about as long as the all-reduce: the case where overlap would help most.
const timings = async (runs: number, fn: () => void): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(await time(fn));
  return out;
};
const reduceS = median(await timings(3, () => comm.allReduceSum(bucket)));
compute(); // warm-up
const oneGemm = median(await timings(5, compute));
gemms = Math.max(1, Math.round(reduceS / oneGemm));
const rows: number[][] = [];
for (let r = 0; r < Number(v.repeats); r++) {
  rows.push([
    await time(compute),
    await time(() => comm.allReduceSum(bucket)),
    await time(() => {
      const pending = comm.startAllReduceSum(bucket);
      compute();
      pending.wait();
    }),
  ]);
}
const [alone, reduce, overlapped] = [0, 1, 2].map((i) => median(rows.map((row) => row[i])));
if (comm.rank === 0) {
  process.stdout.write(`${comm.size} processes, ${v.mib} MiB bucket, ${gemms} GEMMs of ${n}³ (median of ${v.repeats}):\n` +
    `  compute alone ${alone.toFixed(3)} s, all-reduce alone ${reduce.toFixed(3)} s, sum ${(alone + reduce).toFixed(3)} s\n` +
    `  all-reduce started, then computed, then waited for: ${overlapped.toFixed(3)} s (${(100 * (1 - overlapped / (alone + reduce))).toFixed(0)}% hidden)\n`);
}
