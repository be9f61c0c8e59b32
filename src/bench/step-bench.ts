/**
 * `relora bench step`: the real training step (src/train/step.ts: forward, backward, clipping,
 * AdamW) timed over N steps after warm-up on random tokens, with peak RSS, the training-state
 * bytes `relora info` reports, and model-FLOPs utilisation against the GEMM peak measured in the
 * same process.
 */
import { backendInfo } from '../engine/backend.ts';
import { withPrecision, type Precision } from '../engine/ops/precision.ts';
import { RandomStream } from '../engine/rng.ts';
import { Tensor } from '../engine/tensor.ts';
import { gemmThroughput, GEMM_SHAPES } from './gemm.ts';
import { namedConfig, type LlamaConfig } from '../nn/config.ts';
import { LlamaForCausalLM } from '../nn/llama.ts';
import { AdamW } from '../optim/adamw.ts';
import { trainingFootprint } from '../relora/accounting.ts';
import { DEFAULT_LORA, loraStreams, wrapWithLora, type TrainingMode, type WrapOptions } from '../relora/wrap.ts';
import { trainStep } from '../train/step.ts';
import { stepFlops } from './flops.ts';
import { spread } from './stats.ts';

export interface StepBenchOptions {
  model: string;
  mode: TrainingMode;
  rank: number;
  seqLen: number;
  microBatch: number;
  /** Timed steps. */
  steps: number;
  /** Untimed steps first (buffers reach their steady-state sizes, caches warm). */
  warmup: number;
  vocabSize?: number;
  /** Repetitions per GEMM case of the peak measurement; 0 skips it (mfu is then null). */
  gemmReps: number;
  seed?: number;
  /** LoRA modes: frozen-weight products in bfloat16 (LoraOptions.frozenBf16). */
  frozenBf16?: boolean;
  /** Precision of every product (ops/precision.ts); default fp32. */
  precision?: Precision;
  /** LoRA modes: dropout on the LoRA input (default DEFAULT_LORA.dropout, 0.1). */
  loraDropout?: number;
}

export interface StepBenchRecord {
  impl: 'relora';
  model: string;
  mode: TrainingMode;
  rank: number | null;
  /** Whether the frozen weights' products ran in bfloat16 (LoRA modes only). */
  frozen_bf16: boolean;
  /** Precision of every product: fp32, or bf16 mixed precision. */
  precision: Precision;
  /** LoRA dropout (LoRA modes only; 0 lets ops.loraLinear fold the branch into W). */
  lora_dropout: number | null;
  seq_len: number;
  micro_batch: number;
  vocab_size: number;
  steps: number;
  warmup: number;
  threads: number;
  backend: string;
  blas: string;
  tokens_per_step: number;
  tokens_per_s: number;
  step_ms_median: number;
  step_ms_min: number;
  step_ms_max: number;
  step_ms_iqr: number;
  peak_rss_bytes: number;
  params_total: number;
  params_trainable: number;
  /** Parameters + gradients + AdamW moments, exactly as `relora info` computes them. */
  state_bytes: number;
  model_flops_per_step: number;
  achieved_gflops: number;
  gemm_peak_gflops: number | null;
  mfu: number | null;
  /** The bf16 GEMM's best GFLOP/s (bf16 operands, fp32 accumulation) and the MFU against it. */
  gemm_peak_bf16_gflops: number | null;
  mfu_bf16: number | null;
  loss_first: number;
  loss_last: number;
}

export function validateStepBenchOptions(o: StepBenchOptions): void {
  for (const k of ['rank', 'seqLen', 'microBatch', 'steps'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`bench step: ${k} must be a positive integer, got ${o[k]}`);
  }
  for (const k of ['warmup', 'gemmReps'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`bench step: ${k} must be a non-negative integer, got ${o[k]}`);
  }
  if (o.loraDropout !== undefined && !(o.loraDropout >= 0 && o.loraDropout < 1)) throw new Error(`bench step: lora dropout must be in [0, 1), got ${o.loraDropout}`);
}

/** Peak resident set size of this process so far, bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Best median GFLOP/s over the `relora bench gemm` shapes and transposes, through our matmul. */
export function gemmPeakGflops(reps: number): number {
  let best = 0;
  for (const [m, k, n] of GEMM_SHAPES) {
    for (const ta of [false, true]) for (const tb of [false, true]) best = Math.max(best, gemmThroughput(m, k, n, ta, tb, reps));
  }
  return best;
}

export interface StepBenchHooks {
  /** One line per step. */
  log?(line: string): void;
  /** Called once the warm-up steps are done and the timed ones start. */
  afterWarmup?(): void;
  /** Called after the last timed step, before the GEMM peak is measured. */
  afterSteps?(): void;
}

/** A model, its optimizer and a few random batches, ready to time one training step at a time. */
export interface Stepper {
  cfg: LlamaConfig;
  lora: WrapOptions;
  /** One real training step on the next batch: its wall time and loss. */
  step(): { ms: number; loss: number };
  dispose(): void;
}

export function makeStepper(o: StepBenchOptions): Stepper {
  validateStepBenchOptions(o);
  const cfg = namedConfig(o.model, { maxSeqLen: Math.max(o.seqLen, 1), ...(o.vocabSize ? { vocabSize: o.vocabSize } : {}) });
  const seed = o.seed ?? 0;
  const lora = { ...DEFAULT_LORA, rank: o.rank, dropout: o.loraDropout ?? DEFAULT_LORA.dropout, frozenBf16: o.frozenBf16 ?? false };
  const model = new LlamaForCausalLM(cfg).initWeights(seed);
  if (o.mode !== 'full') wrapWithLora(model, lora, loraStreams(seed));
  const optimizer = new AdamW(model.namedTrainableParameters(), { lr: 1e-3 });
  const data = new RandomStream(seed + 1);
  const batches = Array.from({ length: 4 }, () => {
    const u = new Float64Array(o.microBatch * o.seqLen);
    data.uniform(u);
    return Tensor.from(Int32Array.from(u, (x) => Math.floor(x * cfg.vocabSize)), [o.microBatch, o.seqLen]);
  });
  let i = 0;
  return {
    cfg,
    lora,
    step() {
      const t0 = process.hrtime.bigint();
      const r = withPrecision(o.precision ?? 'fp32', () => trainStep(model, optimizer, [batches[i++ % batches.length]], 1e-3, 1.0));
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, loss: r.loss };
    },
    dispose() {
      optimizer.dispose();
      model.dispose();
    },
  };
}

export function runStepBench(o: StepBenchOptions, hooks: StepBenchHooks = {}): StepBenchRecord {
  const stepper = makeStepper(o);
  const { cfg, lora } = stepper;
  const times: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < o.warmup + o.steps; i++) {
    if (i === o.warmup) hooks.afterWarmup?.();
    const { ms, loss } = stepper.step();
    losses.push(loss);
    if (i >= o.warmup) times.push(ms);
    hooks.log?.(`step ${i + 1}/${o.warmup + o.steps}${i < o.warmup ? ' (warm-up)' : ''}: ${ms.toFixed(0)} ms, loss ${loss.toFixed(4)}`);
  }
  hooks.afterSteps?.();
  // Read before the GEMM measurement allocates its own operands.
  const peak = peakRssBytes();
  stepper.dispose();
  const gemmPeak = o.gemmReps > 0 ? gemmPeakGflops(o.gemmReps) : null;
  const gemmPeakBf16 = o.gemmReps > 0 ? withPrecision('bf16', () => gemmPeakGflops(o.gemmReps)) : null;

  const fp = trainingFootprint(cfg, o.mode, lora);
  const flops = stepFlops(cfg, o.mode, o.rank, o.microBatch, o.seqLen, lora.dropout > 0);
  const s = spread(times);
  const tokens = o.microBatch * o.seqLen;
  const achieved = flops / (s.median / 1e3) / 1e9;
  const info = backendInfo();
  return {
    impl: 'relora',
    model: o.model,
    mode: o.mode,
    rank: o.mode === 'full' ? null : o.rank,
    frozen_bf16: o.mode !== 'full' && (o.frozenBf16 ?? false),
    precision: o.precision ?? 'fp32',
    lora_dropout: o.mode === 'full' ? null : lora.dropout,
    seq_len: o.seqLen,
    micro_batch: o.microBatch,
    vocab_size: cfg.vocabSize,
    steps: o.steps,
    warmup: o.warmup,
    threads: info.threads,
    backend: info.backend,
    blas: info.blas,
    tokens_per_step: tokens,
    tokens_per_s: tokens / (s.median / 1e3),
    step_ms_median: s.median,
    step_ms_min: s.min,
    step_ms_max: s.max,
    step_ms_iqr: s.iqr,
    peak_rss_bytes: peak,
    params_total: fp.params_total,
    params_trainable: fp.params_trainable,
    state_bytes: fp.bytes_params + fp.bytes_grads + fp.bytes_optimizer,
    model_flops_per_step: flops,
    achieved_gflops: achieved,
    gemm_peak_gflops: gemmPeak,
    mfu: gemmPeak === null ? null : achieved / gemmPeak,
    gemm_peak_bf16_gflops: gemmPeakBf16,
    mfu_bf16: gemmPeakBf16 === null ? null : achieved / gemmPeakBf16,
    loss_first: losses[0],
    loss_last: losses[losses.length - 1],
  };
}
