/**
 * `npm run bench:compare` against PyTorch's best CPU setups, not only its eager fp32: every row
 * (model × mode × rank) is measured in relora fp32 and bf16 and in PyTorch eager fp32, autocast
 * bf16, torch.compile fp32 and torch.compile bf16, each in its own child process. Within a round
 * the setups run one after another, in the opposite order every other round, so relora and
 * PyTorch see the same load on a shared machine. Each row reports the ratio of relora's best
 * setup (and each relora setup) to PyTorch's fastest.
 */
import { oursCommand, runBench, torchCommand, type BenchRecord, type StepArgs } from './child.ts';
import type { CompareOptions } from './compare.ts';
import { fixed, formatTable, mib } from './table.ts';

export interface Setup {
  side: 'relora' | 'pytorch';
  /** Column heading. */
  label: string;
  precision: 'fp32' | 'bf16';
  compile: boolean;
}

export const SETUPS: readonly Setup[] = [
  { side: 'relora', label: 'relora fp32', precision: 'fp32', compile: false },
  { side: 'relora', label: 'relora bf16', precision: 'bf16', compile: false },
  { side: 'pytorch', label: 'PyTorch eager fp32', precision: 'fp32', compile: false },
  { side: 'pytorch', label: 'PyTorch autocast bf16', precision: 'bf16', compile: false },
  { side: 'pytorch', label: 'PyTorch compile fp32', precision: 'fp32', compile: true },
  { side: 'pytorch', label: 'PyTorch compile bf16', precision: 'bf16', compile: true },
];

/** A row of the table: a model, a mode and (LoRA modes) a rank. */
export interface RowSpec {
  model: string;
  mode: 'full' | 'relora';
  rank: number | null;
}

/** `full`, `relora` (rank 128) or `relora:r32` style labels, as the script's --modes take them. */
export function parseRowMode(label: string): { mode: 'full' | 'relora'; rank: number | null } {
  if (label === 'full') return { mode: 'full', rank: null };
  const m = /^relora(?::r(\d+))?$/.exec(label);
  if (!m) throw new Error(`mode: unknown value "${label}"; expected full, relora or relora:rN (e.g. relora:r32)`);
  return { mode: 'relora', rank: m[1] ? Number(m[1]) : 128 };
}

/** compare.ts's step shape, rounds and quiet policy, with rows and setups instead of modes. */
export interface SetupCompareOptions extends Omit<CompareOptions, 'models' | 'modes'> {
  rows: RowSpec[];
  setups: readonly Setup[];
  /** LoRA dropout of the relora rows (0.1 as in the paper's runs). */
  loraDropout: number;
  /** Repetitions per GEMM case of the peaks MFU is relative to (default: each side's own default). */
  gemmReps?: number;
}

export interface SetupRow extends RowSpec {
  /** Records per setup label, one per round that succeeded. */
  records: Record<string, BenchRecord[]>;
  errors: string[];
  /** Highest CPU busy fraction seen right before one of this row's runs. */
  busyBefore: number;
}

export function setupArgs(o: SetupCompareOptions, row: RowSpec, s: Setup): StepArgs {
  return {
    model: row.model, mode: row.mode, seqLen: o.seqLen, microBatch: o.microBatch, steps: o.steps, warmup: o.warmup, threads: o.threads,
    ...(row.rank !== null ? { rank: row.rank, loraDropout: o.loraDropout } : {}),
    precision: s.precision, ...(s.compile ? { compile: true } : {}), ...(o.gemmReps !== undefined ? { gemmReps: o.gemmReps } : {}),
  };
}

export async function runSetupCompare(o: SetupCompareOptions): Promise<SetupRow[]> {
  const out: SetupRow[] = [];
  for (const spec of o.rows) {
    const row: SetupRow = { ...spec, records: {}, errors: [], busyBefore: 0 };
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? [...o.setups] : [...o.setups].reverse();
      for (const s of order) {
        o.log?.(`${spec.model} ${spec.mode}${spec.rank === null ? '' : ` r${spec.rank}`} round ${round + 1}/${o.rounds}: ${s.label}`);
        const args = setupArgs(o, spec, s);
        const r = await runBench(s.side === 'relora' ? oursCommand(args) : torchCommand(args), o.quiet);
        row.busyBefore = Math.max(row.busyBefore, r.busyBefore);
        if (r.record) (row.records[s.label] ??= []).push(r.record);
        else row.errors.push(`${s.label}: ${r.error}`);
        o.log?.(r.record ? `  ${r.record.tokens_per_s.toFixed(1)} tokens/s, peak RSS ${mib(r.record.peak_rss_bytes)}` : `  failed: ${r.error}`);
      }
    }
    out.push(row);
  }
  return out;
}

/** The best round of a setup (highest tokens/s: other processes only ever slow a run down). */
export function bestRecord(rs: BenchRecord[] | undefined): BenchRecord | null {
  if (!rs || rs.length === 0) return null;
  return rs.reduce((a, b) => (b.tokens_per_s > a.tokens_per_s ? b : a));
}

export interface RowSummary {
  row: SetupRow;
  best: Record<string, BenchRecord | null>;
  /** PyTorch's fastest setup (label) and relora's. */
  torchFastest: string | null;
  reloraFastest: string | null;
  /** relora's fastest tokens/s over PyTorch's fastest. */
  ratio: number | null;
}

export function summarizeRow(row: SetupRow, setups: readonly Setup[]): RowSummary {
  const best: Record<string, BenchRecord | null> = {};
  for (const s of setups) best[s.label] = bestRecord(row.records[s.label]);
  const fastest = (side: Setup['side']): string | null => {
    let label: string | null = null;
    for (const s of setups) {
      const r = best[s.label];
      if (s.side === side && r && (label === null || r.tokens_per_s > best[label]!.tokens_per_s)) label = s.label;
    }
    return label;
  };
  const torchFastest = fastest('pytorch'), reloraFastest = fastest('relora');
  const ratio = torchFastest && reloraFastest ? best[reloraFastest]!.tokens_per_s / best[torchFastest]!.tokens_per_s : null;
  return { row, best, torchFastest, reloraFastest, ratio };
}

const pct = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '-');

/** Tokens/s per setup, each relora setup's ratio to PyTorch's fastest, peak RSS and MFU of the fastest of each side. */
export function setupTable(summaries: RowSummary[], setups: readonly Setup[], markdown = false): string {
  const relora = setups.filter((s) => s.side === 'relora');
  const headers = [
    'config', 'mode', ...setups.map((s) => `${s.label} tok/s`), 'PyTorch fastest',
    ...relora.map((s) => `${s.label} ÷ fastest`), 'peak RSS relora / PyTorch', 'MFU relora (fp32 / bf16 peak)', 'MFU PyTorch (fp32 / bf16 peak)', 'compile s',
  ];
  const rows = summaries.map(({ row, best, torchFastest, reloraFastest }) => {
    const t = torchFastest ? best[torchFastest]! : null, r = reloraFastest ? best[reloraFastest]! : null;
    const compileS = setups.filter((s) => s.compile).map((s) => best[s.label]?.compile_s).filter((x): x is number => typeof x === 'number');
    return [
      row.model, row.rank === null ? row.mode : `${row.mode} r${row.rank}`,
      ...setups.map((s) => fixed(best[s.label]?.tokens_per_s, 0)),
      torchFastest ? torchFastest.replace(/^PyTorch /, '') : '-',
      ...relora.map((s) => (t && best[s.label] ? `${(best[s.label]!.tokens_per_s / t.tokens_per_s).toFixed(2)}×` : '-')),
      r && t ? `${mib(r.peak_rss_bytes)} / ${mib(t.peak_rss_bytes)}` : '-',
      r ? `${pct(r.mfu)} / ${pct(r.mfu_bf16)}` : '-',
      t ? `${pct(t.mfu)} / ${pct(t.mfu_bf16)}` : '-',
      compileS.length ? compileS.map((x) => x.toFixed(0)).join(' / ') : '-',
    ];
  });
  return formatTable(headers, rows, markdown);
}
