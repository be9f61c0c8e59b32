/**
 * `npm run bench:scaling`: how step cost and memory grow with model size (llama_9m … llama_130m)
 * and with context (llama_60m at sequence 128 … 1024, same tokens per step), in full and relora
 * modes, each configuration in its own child process so peak RSS is per configuration; then the
 * largest named config each mode can train at micro-batch 1, sequence 256, checked by a real run.
 */
import { totalmem } from 'node:os';
import { defaultChunkRows } from '../engine/ops/loss.ts';
import { NAMED_CONFIGS, namedConfig, countParameters } from '../nn/config.ts';
import { trainingFootprint } from '../relora/accounting.ts';
import { DEFAULT_LORA, type TrainingMode } from '../relora/wrap.ts';
import { oursCommand, runBench, type BenchRecord, type QuietPolicy, type StepArgs } from './child.ts';
import { fixed, formatTable, mib } from './table.ts';

export const SCALING_MODELS = ['llama_9m', 'llama_20m', 'llama_35m', 'llama_60m', 'llama_130m'];
export const SCALING_SEQ_LENS = [128, 256, 512, 1024];
export const SCALING_MODES: TrainingMode[] = ['full', 'relora'];

export interface ScalingOptions {
  microBatch: number;
  /** Tokens per step of the context sweep (micro-batch = tokens / sequence length). */
  contextTokens: number;
  steps: number;
  warmup: number;
  threads: number;
  quiet: QuietPolicy;
  /** Fraction of physical memory a largest-config candidate may be predicted to need. */
  memoryFraction: number;
  /** Runs per point of the sweeps; the one with the highest tokens/s is kept (default 1). */
  rounds?: number;
  /** LoRA rank of the relora points (default DEFAULT_LORA.rank, 128). */
  rank?: number;
  /** LoRA dropout of the relora points (default DEFAULT_LORA.dropout, 0.1). */
  loraDropout?: number;
  /** Skip the largest-config search (it runs the biggest models and takes minutes). */
  skipLargest?: boolean;
  log?: (line: string) => void;
}

export interface ScalingPoint {
  model: string;
  mode: TrainingMode;
  seqLen: number;
  microBatch: number;
  record: BenchRecord | null;
  error: string | null;
}

export interface LargestResult {
  mode: TrainingMode;
  /** The largest config whose real run succeeded, or null. */
  model: string | null;
  record: BenchRecord | null;
  /** Bigger configs and why each was not it (predicted too big, or the run failed). */
  rejected: { model: string; reason: string }[];
}

/**
 * A deliberately generous estimate of a training step's peak memory (bytes): training state plus
 * activations kept for backward (per token and layer: about 12 hidden-width and 3 FFN-width
 * vectors, the attention probabilities, the LoRA intermediates), one chunk of logits,
 * and the runtime itself. Only used to avoid starting runs that cannot fit on a shared machine.
 */
export function estimatePeakBytes(model: string, mode: TrainingMode, microBatch: number, seqLen: number, rank = DEFAULT_LORA.rank): number {
  const cfg = namedConfig(model, { maxSeqLen: seqLen });
  const fp = trainingFootprint(cfg, mode, { ...DEFAULT_LORA, rank });
  const state = fp.bytes_params + fp.bytes_grads + fp.bytes_optimizer;
  const tok = microBatch * seqLen, d = cfg.hiddenSize, f = cfg.intermediateSize;
  const perTokenLayer = 12 * d + 3 * f + cfg.numHeads * seqLen + (mode === 'full' ? 0 : 7 * rank);
  const activations = 4 * (tok * (cfg.numLayers * perTokenLayer + 3 * d) + Math.min(tok, defaultChunkRows(cfg.vocabSize)) * cfg.vocabSize);
  return 1.25 * (state + activations) + 400 * 2 ** 20;
}

/** Named configs, largest first. */
export function configsBySize(): string[] {
  return Object.keys(NAMED_CONFIGS).sort((a, b) => countParameters(namedConfig(b)) - countParameters(namedConfig(a)));
}

/** The `bench step` arguments of one point; the LoRA rank and dropout only where there are LoRA factors. */
export function pointArgs(o: ScalingOptions, model: string, mode: TrainingMode, seqLen: number, microBatch: number, steps = o.steps, warmup = o.warmup, gemmReps?: number): StepArgs {
  return { model, mode, seqLen, microBatch, steps, warmup, threads: o.threads, gemmReps, ...(mode !== 'full' && o.rank ? { rank: o.rank } : {}),
    ...(mode !== 'full' && o.loraDropout !== undefined ? { loraDropout: o.loraDropout } : {}) };
}

async function point(o: ScalingOptions, model: string, mode: TrainingMode, seqLen: number, microBatch: number, steps = o.steps, warmup = o.warmup, gemmReps?: number, rounds = o.rounds ?? 1): Promise<ScalingPoint> {
  const args = pointArgs(o, model, mode, seqLen, microBatch, steps, warmup, gemmReps);
  let best: ScalingPoint | null = null;
  for (let i = 0; i < rounds; i++) {
    o.log?.(`${model} ${mode} seq ${seqLen} × micro-batch ${microBatch}${rounds > 1 ? ` (round ${i + 1}/${rounds})` : ''}`);
    const r = await runBench(oursCommand(args), o.quiet);
    // Other processes only slow a run down: keep the fastest round (with its own peak RSS).
    if (!best || (r.record && (!best.record || r.record.tokens_per_s > best.record.tokens_per_s))) {
      best = { model, mode, seqLen, microBatch, record: r.record, error: r.error };
    }
  }
  return best!;
}

export async function runSizeSweep(o: ScalingOptions): Promise<ScalingPoint[]> {
  const out: ScalingPoint[] = [];
  for (const model of SCALING_MODELS) for (const mode of SCALING_MODES) out.push(await point(o, model, mode, 256, o.microBatch));
  return out;
}

export async function runContextSweep(o: ScalingOptions): Promise<ScalingPoint[]> {
  const out: ScalingPoint[] = [];
  for (const seqLen of SCALING_SEQ_LENS) {
    const mb = Math.max(1, Math.floor(o.contextTokens / seqLen));
    for (const mode of SCALING_MODES) out.push(await point(o, 'llama_60m', mode, seqLen, mb));
  }
  return out;
}

export async function findLargest(o: ScalingOptions, mode: TrainingMode): Promise<LargestResult> {
  const limit = o.memoryFraction * totalmem();
  const rejected: { model: string; reason: string }[] = [];
  for (const model of configsBySize()) {
    const predicted = estimatePeakBytes(model, mode, 1, 256);
    if (predicted > limit) {
      rejected.push({ model, reason: `predicted ${mib(predicted)} > ${mib(limit)} (${Math.round(100 * o.memoryFraction)}% of memory)` });
      continue;
    }
    const p = await point(o, model, mode, 256, 1, 1, 1, 0, 1);
    if (p.record) return { mode, model, record: p.record, rejected };
    rejected.push({ model, reason: `run failed: ${p.error}` });
  }
  return { mode, model: null, record: null, rejected };
}

/** Size or context sweep as a table; relora's RSS saving next to each full/relora pair. */
export function scalingTable(points: ScalingPoint[], by: 'model' | 'seq', markdown = false): string {
  const headers = [by === 'model' ? 'config' : 'seq × batch', 'full tok/s', 'relora tok/s', 'relora/full step', 'full peak RSS', 'relora peak RSS', 'RSS saved', 'full MFU', 'relora MFU'];
  const keys = [...new Set(points.map((p) => (by === 'model' ? p.model : `${p.seqLen} × ${p.microBatch}`)))];
  const rows = keys.map((key) => {
    const pick = (mode: TrainingMode): BenchRecord | null =>
      points.find((p) => p.mode === mode && (by === 'model' ? p.model : `${p.seqLen} × ${p.microBatch}`) === key)?.record ?? null;
    const f = pick('full'), r = pick('relora');
    return [
      key, fixed(f?.tokens_per_s, 1), fixed(r?.tokens_per_s, 1), f && r ? (r.step_ms_median / f.step_ms_median).toFixed(2) : '-',
      f ? mib(f.peak_rss_bytes) : '-', r ? mib(r.peak_rss_bytes) : '-', f && r ? mib(f.peak_rss_bytes - r.peak_rss_bytes) : '-',
      f?.mfu != null ? `${(100 * f.mfu).toFixed(0)}%` : '-', r?.mfu != null ? `${(100 * r.mfu).toFixed(0)}%` : '-',
    ];
  });
  return formatTable(headers, rows, markdown);
}

export function largestTable(results: LargestResult[], markdown = false): string {
  const rows = results.map((l) => [
    l.mode, l.model ?? 'none', l.record ? fixed(l.record.tokens_per_s, 1) : '-', l.record ? mib(l.record.peak_rss_bytes) : '-',
    l.record ? mib(l.record.state_bytes) : '-', l.rejected.length ? l.rejected.map((x) => `${x.model}: ${x.reason}`).join('; ') : '-',
  ]);
  return formatTable(['mode', 'largest config', 'tok/s', 'peak RSS', 'training state', 'bigger configs'], rows, markdown);
}
