/** `relora doctor`: what the engine runs on, how fast its GEMM is, and whether its gradients are right. */
import type { Command } from 'commander';
import { backendInfo } from '../../engine/backend.ts';
import { runGradchecks } from '../../engine/gradcheck.ts';
import { gemmThroughput } from '../../bench/gemm.ts';
import { probeWebGpu } from '../../engine/backends/webgpu/probe.ts';

export function register(program: Command): void {
  program
    .command('doctor')
    .description('print backend, GEMM library, threads and GEMM GFLOP/s; run the gradient checks (exit 1 on failure)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const info = backendInfo();
      const webgpu = await probeWebGpu();
      const gflops = gemmThroughput(1024, 1024, 1024, false, false, 5);
      const results = runGradchecks();
      const failed = results.filter((r) => !r.passed);
      const report = {
        backend: info.backend,
        blas: info.blas,
        threads: info.threads,
        gemm_gflops: Number(gflops.toFixed(1)),
        gradcheck: { passed: results.length - failed.length, failed: failed.length },
        webgpu,
        ...(info.fallback ? { fallback_reason: info.fallback } : {}),
        ...(failed.length ? { failures: failed } : {}),
      };
      if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        process.stdout.write(`backend      ${info.backend}${info.fallback ? ` (native unavailable: ${info.fallback})` : ''}\n`);
        process.stdout.write(`GEMM         ${info.blas}\n`);
        process.stdout.write(`threads      ${info.threads}\n`);
        process.stdout.write(`GEMM speed   ${gflops.toFixed(1)} GFLOP/s (1024³ fp32)\n`);
        process.stdout.write(`gradcheck    ${report.gradcheck.passed} passed, ${report.gradcheck.failed} failed\n`);
        process.stdout.write(`WebGPU       ${webgpu.adapter ?? `no adapter (${webgpu.error})`}\n`);
        for (const f of failed) {
          process.stdout.write(`  FAILED ${f.op} d/d${f.input}: analytic ${f.analytic} numeric ${f.numeric} (rel. error ${f.relError.toExponential(2)})\n`);
        }
      }
      if (failed.length) process.exitCode = 1;
    });
}
