/**
 * `npm run bench:compare`: our training step against PyTorch's (transformers + PEFT, eager
 * fp32, same threads, batch, sequence length, mode), each in its own child process, alternating
 * which side goes first; one table with both sides' tokens/s, their ratio and peak RSS, plus the
 * relora/full step-time ratio per model on each side — and ours again from `relora bench ratio`,
 * which alternates the two steps in one process and so does not drift with the machine.
 */
import { median, mib, fixed, formatTable } from './table.ts';
import { oursCommand, parseBenchMode, ratioCommand, runBench, torchCommand, type BenchRecord, type QuietPolicy, type StepArgs } from './child.ts';
import type { StepRatioRecord } from './step-ratio.ts';

export interface CompareOptions {
  models: string[];
  modes: string[];
  seqLen: number;
  microBatch: number;
  steps: number;
  warmup: number;
  threads: number;
  /** Each case is measured this many times on each side; medians are reported. */
  rounds: number;
  quiet: QuietPolicy;
  log?: (line: string) => void;
}

export interface CompareCase {
  model: string;
  mode: string;
  ours: BenchRecord[];
  torch: BenchRecord[];
  errors: string[];
  /** Highest CPU busy fraction seen right before one of this case's runs. */
  busyBefore: number;
}

export interface CaseSummary {
  model: string;
  mode: string;
  ours_tokens_per_s: number | null;
  torch_tokens_per_s: number | null;
  /** ours / PyTorch tokens/s. */
  ratio: number | null;
  ours_step_ms: number | null;
  torch_step_ms: number | null;
  ours_peak_rss_bytes: number | null;
  torch_peak_rss_bytes: number | null;
  ours_mfu: number | null;
  torch_mfu: number | null;
}

/** `mode` as the scripts name it (parseBenchMode: full, relora, relora-bf16, ...). */
export function stepArgs(o: CompareOptions, model: string, mode: string): StepArgs {
  const m = parseBenchMode(mode);
  return { model, mode: m.mode, frozenBf16: m.frozenBf16, seqLen: o.seqLen, microBatch: o.microBatch, steps: o.steps, warmup: o.warmup, threads: o.threads };
}

export async function runCompare(o: CompareOptions): Promise<CompareCase[]> {
  for (const mode of o.modes) parseBenchMode(mode);
  const cases: CompareCase[] = [];
  let oursFirst = true;
  for (const model of o.models) {
    for (const mode of o.modes) {
      const c: CompareCase = { model, mode, ours: [], torch: [], errors: [], busyBefore: 0 };
      const args = stepArgs(o, model, mode);
      for (let round = 0; round < o.rounds; round++) {
        const sides = oursFirst ? (['relora', 'pytorch'] as const) : (['pytorch', 'relora'] as const);
        oursFirst = !oursFirst;
        for (const side of sides) {
          o.log?.(`${model} ${mode} round ${round + 1}/${o.rounds}: ${side}`);
          const r = await runBench(side === 'relora' ? oursCommand(args) : torchCommand(args), o.quiet);
          c.busyBefore = Math.max(c.busyBefore, r.busyBefore);
          if (r.record) (side === 'relora' ? c.ours : c.torch).push(r.record);
          else c.errors.push(`${side}: ${r.error}`);
        }
      }
      cases.push(c);
    }
  }
  return cases;
}

export interface InterleavedRatio {
  model: string;
  /** relora or relora-bf16. */
  mode: string;
  record: StepRatioRecord | null;
  error: string | null;
}

/** `relora bench ratio` for every model and relora mode of `o` (lora's step is relora's). */
export async function runInterleavedRatios(o: CompareOptions): Promise<InterleavedRatio[]> {
  const out: InterleavedRatio[] = [];
  for (const model of o.models) {
    for (const mode of o.modes) {
      if (parseBenchMode(mode).mode !== 'relora') continue;
      o.log?.(`${model} ${mode}/full, interleaved in one process`);
      const r = await runBench<StepRatioRecord>(ratioCommand(stepArgs(o, model, mode)), o.quiet, 'ratio_of_medians');
      out.push({ model, mode, record: r.record, error: r.error });
    }
  }
  return out;
}

/**
 * How rounds combine: `median` of each field, or `best` — the round with the highest tokens/s
 * (its own RSS and MFU). Other processes on a shared machine only ever slow a run down, so the
 * best round is the closest to what the machine does undisturbed.
 */
export type RoundStat = 'best' | 'median';

function pick(rs: BenchRecord[], stat: RoundStat): BenchRecord[] {
  if (stat === 'median' || rs.length === 0) return rs;
  return [rs.reduce((a, b) => (b.tokens_per_s > a.tokens_per_s ? b : a))];
}

function med(rs: BenchRecord[], f: (r: BenchRecord) => number | null): number | null {
  const xs = rs.map(f).filter((x): x is number => x !== null && Number.isFinite(x));
  return xs.length ? median(xs) : null;
}

export function summarize(c: CompareCase, stat: RoundStat = 'median'): CaseSummary {
  c = { ...c, ours: pick(c.ours, stat), torch: pick(c.torch, stat) };
  const ot = med(c.ours, (r) => r.tokens_per_s), tt = med(c.torch, (r) => r.tokens_per_s);
  return {
    model: c.model,
    mode: c.mode,
    ours_tokens_per_s: ot,
    torch_tokens_per_s: tt,
    ratio: ot !== null && tt !== null ? ot / tt : null,
    ours_step_ms: med(c.ours, (r) => r.step_ms_median),
    torch_step_ms: med(c.torch, (r) => r.step_ms_median),
    ours_peak_rss_bytes: med(c.ours, (r) => r.peak_rss_bytes),
    torch_peak_rss_bytes: med(c.torch, (r) => r.peak_rss_bytes),
    ours_mfu: med(c.ours, (r) => r.mfu),
    torch_mfu: med(c.torch, (r) => r.mfu),
  };
}

/** Our relora (or lora) step time over our full step time, per model that has both. */
export function stepRatios(summaries: CaseSummary[], side: 'ours' | 'torch' = 'ours'): { model: string; mode: string; ratio: number }[] {
  const out: { model: string; mode: string; ratio: number }[] = [];
  const key = side === 'ours' ? 'ours_step_ms' : 'torch_step_ms';
  for (const s of summaries) {
    if (s.mode === 'full') continue;
    const full = summaries.find((f) => f.model === s.model && f.mode === 'full');
    const a = s[key], b = full?.[key];
    if (a != null && b != null) out.push({ model: s.model, mode: s.mode, ratio: a / b });
  }
  return out;
}

export function compareTable(summaries: CaseSummary[], markdown = false): string {
  const headers = ['config', 'mode', 'relora tok/s', 'PyTorch tok/s', 'ratio', 'relora peak RSS', 'PyTorch peak RSS', 'relora MFU', 'PyTorch MFU'];
  const rows = summaries.map((s) => [
    s.model, s.mode, fixed(s.ours_tokens_per_s, 1), fixed(s.torch_tokens_per_s, 1), s.ratio === null ? '-' : `${s.ratio.toFixed(2)}×`,
    s.ours_peak_rss_bytes === null ? '-' : mib(s.ours_peak_rss_bytes), s.torch_peak_rss_bytes === null ? '-' : mib(s.torch_peak_rss_bytes),
    s.ours_mfu === null ? '-' : `${(100 * s.ours_mfu).toFixed(0)}%`, s.torch_mfu === null ? '-' : `${(100 * s.torch_mfu).toFixed(0)}%`,
  ]);
  return formatTable(headers, rows, markdown);
}

/** Step-time ratios: each side from the separate runs, and ours interleaved when given. */
export function ratioTable(summaries: CaseSummary[], markdown = false, interleaved: InterleavedRatio[] = []): string {
  const ours = stepRatios(summaries, 'ours'), torch = stepRatios(summaries, 'torch');
  const rows = ours.map((r) => {
    const t = torch.find((x) => x.model === r.model && x.mode === r.mode);
    const row = [r.model, `${r.mode}/full`, r.ratio.toFixed(2), t ? t.ratio.toFixed(2) : '-'];
    if (interleaved.length) {
      const i = interleaved.find((x) => x.model === r.model && x.mode === r.mode)?.record;
      row.push(i ? `${i.ratio_of_medians.toFixed(2)} (pairs ${i.pair_ratio_min.toFixed(2)}–${i.pair_ratio_max.toFixed(2)})` : '-');
    }
    return row;
  });
  const headers = ['config', 'step time', 'relora', 'PyTorch'];
  if (interleaved.length) headers.push('relora, interleaved');
  return formatTable(headers, rows, markdown);
}
