/** `relora bench gemm` (GEMM GFLOP/s) and `relora bench step` (one training step, timed). */
import type { Command } from 'commander';
import { backendInfo, K } from '../../engine/backend.ts';
import type { Precision } from '../../engine/ops/precision.ts';
import { profileKernels } from '../../bench/profile.ts';
import { runStepBench, type StepBenchRecord } from '../../bench/step-bench.ts';
import { runStepRatio } from '../../bench/step-ratio.ts';
import { DEFAULT_LORA, parseMode } from '../../relora/wrap.ts';
import { benchGemm } from '../../bench/gemm.ts';
import { mib } from '../../bench/table.ts';
import { parseFloatOption, parseIntOption, UsageError } from '../errors.ts';

function parsePrecisionOption(v: string): Precision {
  if (v !== 'fp32' && v !== 'bf16') throw new UsageError(`--precision: expected fp32 or bf16, got "${v}"`);
  return v;
}

/** A benchmark's complaint about its options (as opposed to a failure while running) is a usage error. */
function asUsageError(e: unknown): unknown {
  const msg = (e as Error).message;
  return /^(bench step|unknown model|model config|lora|rank)/.test(msg) ? new UsageError(msg) : e;
}

/** The options `bench step` and `bench ratio` share: the model, the step's shape, the LoRA setting.
 * `loraNote` prefixes the LoRA options' help where the command also has a full-rank mode. */
function stepShapeOptions(cmd: Command, loraNote: string): Command {
  return cmd
    .requiredOption('--model <name>', 'named model config, e.g. llama_60m')
    .option('--rank <r>', 'LoRA rank', parseIntOption('--rank'), DEFAULT_LORA.rank)
    .option('--seq-len <t>', 'sequence length', parseIntOption('--seq-len'), 256)
    .option('--micro-batch <b>', 'sequences per step', parseIntOption('--micro-batch'), 8)
    .option('--vocab-size <v>', 'vocabulary size (default 32100)', parseIntOption('--vocab-size'))
    .option('--frozen-bf16', `${loraNote}compute the frozen weights' products in bfloat16 (fp32 accumulation)`)
    .option('--precision <p>', 'fp32, or bf16 mixed precision (every product in bfloat16, fp32 accumulation)', parsePrecisionOption, 'fp32')
    .option('--lora-dropout <p>', `${loraNote}dropout on the LoRA input (default ${DEFAULT_LORA.dropout}); 0 folds the branch into W`, parseFloatOption('--lora-dropout'));
}

function printStep(r: StepBenchRecord): void {
  const rows: [string, string][] = [
    ['model', `${r.model} (${r.mode}${r.rank === null ? '' : `, rank ${r.rank}, LoRA dropout ${r.lora_dropout}`}${r.frozen_bf16 ? ', frozen W products in bf16' : ''}${r.precision === 'bf16' ? ', bf16 mixed precision' : ''}), vocab ${r.vocab_size}`],
    ['batch', `${r.micro_batch} × ${r.seq_len} = ${r.tokens_per_step} tokens per step`],
    ['backend', `${r.backend}, GEMM ${r.blas}, ${r.threads} thread(s)`],
    ['step time', `median ${r.step_ms_median.toFixed(1)} ms (min ${r.step_ms_min.toFixed(1)}, max ${r.step_ms_max.toFixed(1)}, IQR ${r.step_ms_iqr.toFixed(1)}) over ${r.steps} steps after ${r.warmup} warm-up`],
    ['tokens/s', r.tokens_per_s.toFixed(1)],
    ['peak RSS', mib(r.peak_rss_bytes)],
    ['training state', `${mib(r.state_bytes)} (parameters, gradients, AdamW moments)`],
    ['model FLOPs', `${(r.model_flops_per_step / 1e9).toFixed(1)} GFLOP per step, ${r.achieved_gflops.toFixed(1)} GFLOP/s`],
    ['MFU', r.mfu === null ? '- (GEMM peak not measured)' : `${(100 * r.mfu).toFixed(1)}% of the fp32 GEMM peak ${r.gemm_peak_gflops!.toFixed(1)} GFLOP/s, ${(100 * r.mfu_bf16!).toFixed(1)}% of the bf16 one ${r.gemm_peak_bf16_gflops!.toFixed(1)} GFLOP/s`],
  ];
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(16)}${v}\n`);
}

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
  stepShapeOptions(bench
    .command('step')
    .description('time the full training step (forward, backward, clipping, AdamW) on random tokens'), 'lora/relora: ')
    .option('--mode <mode>', 'full, lora or relora', 'full')
    .option('--steps <n>', 'timed steps (median and spread reported)', parseIntOption('--steps'), 5)
    .option('--warmup <n>', 'untimed steps first', parseIntOption('--warmup', 0), 2)
    .option('--gemm-reps <n>', 'repetitions per GEMM case of the peak that MFU is relative to; 0 skips it', parseIntOption('--gemm-reps', 0), 5)
    .option('--profile', 'also print the time per kernel (and per GEMM shape) of the timed steps')
    .option('--json', 'print one JSON record')
    .action((opts: {
      model: string; mode: string; rank: number; seqLen: number; microBatch: number; steps: number; warmup: number;
      vocabSize?: number; gemmReps: number; frozenBf16?: boolean; precision: Precision; loraDropout?: number; profile?: boolean; json?: boolean;
    }) => {
      let mode;
      try {
        mode = parseMode(opts.mode);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const profiler = opts.profile ? profileKernels(K()) : null;
      const hooks = {
        log: (s: string): void => {
          if (!opts.json) process.stderr.write(`${s}\n`);
        },
        afterWarmup: () => profiler?.reset(),
        afterSteps: () => profiler?.stop(),
      };
      let record: StepBenchRecord;
      try {
        record = runStepBench({
          model: opts.model, mode, rank: opts.rank, seqLen: opts.seqLen, microBatch: opts.microBatch, steps: opts.steps,
          warmup: opts.warmup, vocabSize: opts.vocabSize, gemmReps: opts.gemmReps, frozenBf16: opts.frozenBf16, precision: opts.precision, loraDropout: opts.loraDropout,
        }, hooks);
      } catch (e) {
        throw asUsageError(e);
      } finally {
        profiler?.stop();
      }
      const kernels = profiler?.report().map((e) => ({ kernel: e.kernel, calls: e.calls / opts.steps, ms: e.ms / opts.steps }));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(kernels ? { ...record, kernels } : record)}\n`);
        return;
      }
      printStep(record);
      if (kernels) {
        const total = kernels.reduce((a, e) => a + e.ms, 0);
        process.stdout.write(`\nper step: kernels ${total.toFixed(1)} ms, the rest (JavaScript, allocation, GC) ${(record.step_ms_median - total).toFixed(1)} ms\n`);
        process.stdout.write(`${'kernel'.padEnd(40)}${'calls'.padStart(7)}${'ms'.padStart(10)}${'share'.padStart(8)}\n`);
        for (const e of kernels) {
          process.stdout.write(`${e.kernel.padEnd(40)}${String(Math.round(e.calls * 10) / 10).padStart(7)}${e.ms.toFixed(1).padStart(10)}${`${((100 * e.ms) / record.step_ms_median).toFixed(1)}%`.padStart(8)}\n`);
        }
      }
    });
  stepShapeOptions(bench
    .command('ratio')
    .description('the ReLoRA step time over the full-rank step time, both models in one process, steps alternating'), '')
    .option('--steps <n>', 'timed pairs of steps', parseIntOption('--steps'), 6)
    .option('--warmup <n>', 'untimed pairs first', parseIntOption('--warmup', 0), 1)
    .option('--json', 'print one JSON record')
    .action((opts: { model: string; rank: number; seqLen: number; microBatch: number; steps: number; warmup: number; vocabSize?: number; frozenBf16?: boolean; precision: Precision; loraDropout?: number; json?: boolean }) => {
      let r;
      try {
        r = runStepRatio({
          model: opts.model, rank: opts.rank, seqLen: opts.seqLen, microBatch: opts.microBatch, steps: opts.steps, warmup: opts.warmup,
          vocabSize: opts.vocabSize, frozenBf16: opts.frozenBf16, precision: opts.precision, loraDropout: opts.loraDropout,
        }, (line) => {
          if (!opts.json) process.stderr.write(`${line}\n`);
        });
      } catch (e) {
        throw asUsageError(e);
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      const rows: [string, string][] = [
        ['model', `${r.model}, rank ${r.rank}, LoRA dropout ${r.lora_dropout}${r.frozen_bf16 ? ', frozen W products in bf16' : ''}, ${r.micro_batch} × ${r.seq_len} tokens per step`],
        ['backend', `${r.backend}, ${r.threads} thread(s)`],
        ['full step', `median ${r.full_ms_median.toFixed(1)} ms`],
        ['relora step', `median ${r.relora_ms_median.toFixed(1)} ms`],
        ['relora / full', `${r.ratio_of_medians.toFixed(3)} (ratio of medians); per adjacent pair median ${r.pair_ratio_median.toFixed(3)}, range ${r.pair_ratio_min.toFixed(3)}–${r.pair_ratio_max.toFixed(3)} over ${r.pairs} pairs`],
        ['model FLOPs', `relora / full ${r.flop_ratio.toFixed(3)}`],
      ];
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(16)}${v}\n`);
    });
}
