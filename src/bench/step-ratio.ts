/**
 * `relora bench ratio`: the ReLoRA step over the full-rank step, measured in one process with the
 * two models' steps alternating (full, relora, relora, full, …). On a shared machine whose speed
 * drifts by tens of percent from minute to minute, two separate runs can disagree about the ratio
 * by more than the ratio's distance from 1; adjacent steps see the same conditions.
 */
import { backendInfo } from '../engine/backend.ts';
import { stepFlops } from './flops.ts';
import { makeStepper, type StepBenchOptions } from './step-bench.ts';
import { spread } from './stats.ts';

export type StepRatioOptions = Omit<StepBenchOptions, 'mode' | 'gemmReps'>;

export interface StepRatioRecord {
  model: string;
  rank: number;
  frozen_bf16: boolean;
  lora_dropout: number;
  seq_len: number;
  micro_batch: number;
  threads: number;
  backend: string;
  /** Timed (full, relora) pairs. */
  pairs: number;
  full_ms_median: number;
  relora_ms_median: number;
  /** relora_ms_median / full_ms_median. */
  ratio_of_medians: number;
  /** Median, min and max of relora / full within each adjacent pair. */
  pair_ratio_median: number;
  pair_ratio_min: number;
  pair_ratio_max: number;
  /** Model FLOPs of the ReLoRA step over the full-rank step (src/bench/flops.ts). */
  flop_ratio: number;
}

export function runStepRatio(o: StepRatioOptions, log: (line: string) => void = () => {}): StepRatioRecord {
  const full = makeStepper({ ...o, mode: 'full', gemmReps: 0 });
  const relora = makeStepper({ ...o, mode: 'relora', gemmReps: 0 });
  const fullMs: number[] = [], reloraMs: number[] = [], pairRatios: number[] = [];
  try {
    for (let i = 0; i < o.warmup + o.steps; i++) {
      // Alternate which goes first, so neither always follows the other's cache state.
      const order = i % 2 === 0 ? [full, relora] : [relora, full];
      const [a, b] = order.map((s) => s.step().ms);
      const f = order[0] === full ? a : b, r = order[0] === full ? b : a;
      log(`pair ${i + 1}/${o.warmup + o.steps}${i < o.warmup ? ' (warm-up)' : ''}: full ${f.toFixed(0)} ms, relora ${r.toFixed(0)} ms, ratio ${(r / f).toFixed(3)}`);
      if (i < o.warmup) continue;
      fullMs.push(f);
      reloraMs.push(r);
      pairRatios.push(r / f);
    }
  } finally {
    full.dispose();
    relora.dispose();
  }
  const sf = spread(fullMs), sr = spread(reloraMs), sp = spread(pairRatios);
  const info = backendInfo();
  return {
    model: o.model,
    rank: o.rank,
    frozen_bf16: o.frozenBf16 ?? false,
    lora_dropout: relora.lora.dropout,
    seq_len: o.seqLen,
    micro_batch: o.microBatch,
    threads: info.threads,
    backend: info.backend,
    pairs: o.steps,
    full_ms_median: sf.median,
    relora_ms_median: sr.median,
    ratio_of_medians: sr.median / sf.median,
    pair_ratio_median: sp.median,
    pair_ratio_min: sp.min,
    pair_ratio_max: sp.max,
    flop_ratio: stepFlops(full.cfg, 'relora', o.rank, o.microBatch, o.seqLen, relora.lora.dropout > 0) / stepFlops(full.cfg, 'full', o.rank, o.microBatch, o.seqLen),
  };
}
