/** `relora bench gemm`: fp32 GEMM GFLOP/s through our matmul vs the library called from C. */
import type { Command } from 'commander';
import { backendInfo } from '../../engine/backend.ts';
import { benchGemm } from '../gemm-bench.ts';
import { parseIntOption } from '../errors.ts';

export function register(program: Command): void {
  const bench = program.command('bench').description('benchmarks');
  bench
    .command('gemm')
    .description('fp32 GEMM GFLOP/s for 512³, 1024³ and 4096×512·512×1536, all transposes, vs the direct C call')
    .option('--reps <n>', 'timed repetitions per case (median reported)', parseIntOption('--reps'), 10)
    .option('--json', 'print JSON records')
    .action((opts: { reps: number; json?: boolean }) => {
      const info = backendInfo();
      if (!opts.json) process.stdout.write(`backend ${info.backend}, GEMM ${info.blas}, ${info.threads} thread(s)\n`);
      const records = benchGemm(opts.reps);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(records)}\n`);
        return;
      }
      process.stdout.write(`${'shape (m×k·k×n)'.padEnd(22)}${'op'.padEnd(8)}${'relora'.padStart(10)}${'direct C'.padStart(10)}${'ratio'.padStart(8)}\n`);
      for (const r of records) {
        const op = `${r.transA ? 'Aᵀ' : 'A'}·${r.transB ? 'Bᵀ' : 'B'}`;
        const direct = r.gflops_direct === null ? '-' : r.gflops_direct.toFixed(1);
        const ratio = r.gflops_direct === null ? '-' : `${((100 * r.gflops) / r.gflops_direct).toFixed(0)}%`;
        process.stdout.write(`${`${r.m}×${r.k}·${r.k}×${r.n}`.padEnd(22)}${op.padEnd(8)}${r.gflops.toFixed(1).padStart(10)}${direct.padStart(10)}${ratio.padStart(8)}\n`);
      }
      process.stdout.write('GFLOP/s, median of the timed repetitions\n');
    });
}
