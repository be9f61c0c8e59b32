/**
 * Runs one benchmark per child process, so that each measurement's peak RSS is its own: ours
 * through the CLI (`relora bench step --json`), PyTorch's through tools/reference/bench_torch.py.
 * The machine may be shared, so each run can first wait (bounded) for the CPUs to go quiet.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fields both sides print (`relora bench step --json`, bench_torch.py --json). */
export interface BenchRecord {
  impl: 'relora' | 'pytorch';
  model: string;
  mode: string;
  seq_len: number;
  micro_batch: number;
  threads: number;
  tokens_per_s: number;
  step_ms_median: number;
  step_ms_min: number;
  step_ms_max: number;
  peak_rss_bytes: number;
  state_bytes: number;
  mfu: number | null;
  [key: string]: unknown;
}

export interface StepArgs {
  model: string;
  mode: string;
  seqLen: number;
  microBatch: number;
  steps: number;
  warmup: number;
  threads: number;
  rank?: number;
  gemmReps?: number;
  /** LoRA modes: frozen-weight products in bfloat16 on both sides. */
  frozenBf16?: boolean;
  /** LoRA modes: dropout on the LoRA input (default 0.1 on both sides). */
  loraDropout?: number;
  /** Precision of the products: fp32, or bf16 mixed precision (relora's --precision, PyTorch's autocast). */
  precision?: 'fp32' | 'bf16';
  /** PyTorch only: torch.compile the model (compile time reported apart). */
  compile?: boolean;
}

/** A mode as the scripts name it: `full`, `lora`, `relora`, or `lora-bf16` / `relora-bf16`
 * (frozen-weight products in bfloat16). */
export function parseBenchMode(label: string): { mode: string; frozenBf16: boolean } {
  const m = /^(full|lora|relora)(-bf16)?$/.exec(label);
  if (!m || (m[1] === 'full' && m[2])) throw new Error(`mode: unknown value "${label}"; expected full, lora, relora, lora-bf16 or relora-bf16`);
  return { mode: m[1], frozenBf16: m[2] !== undefined };
}

export const REPO_ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

/** The reference venv's interpreter, or RELORA_PYTHON. */
export function pythonPath(): string {
  return process.env.RELORA_PYTHON ?? join(REPO_ROOT, 'tools', 'reference', '.venv', 'bin', 'python');
}

/** Flags `bench step`, `bench ratio` and bench_torch.py all take: the step's shape and what it trains. */
function shapeFlags(a: StepArgs): string[] {
  const f = ['--model', a.model, '--seq-len', String(a.seqLen), '--micro-batch', String(a.microBatch),
    '--steps', String(a.steps), '--warmup', String(a.warmup), '--json'];
  if (a.rank !== undefined) f.push('--rank', String(a.rank));
  if (a.frozenBf16) f.push('--frozen-bf16');
  if (a.loraDropout !== undefined) f.push('--lora-dropout', String(a.loraDropout));
  if (a.precision !== undefined) f.push('--precision', a.precision);
  return f;
}

function commonFlags(a: StepArgs): string[] {
  return [...shapeFlags(a), '--mode', a.mode, ...(a.gemmReps !== undefined ? ['--gemm-reps', String(a.gemmReps)] : [])];
}

/** Our CLI from source through tsx, on a.threads threads. */
// The native backend, never auto's js fallback: a missing or out-of-date addon is then an error
// for that setup instead of a figure from the much slower js oracle.
function cliCommand(a: StepArgs, args: string[]): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'entry.ts'), '--backend', 'native', '--threads', String(a.threads), ...args]];
}

/** argv (after the executable) of our side: `relora bench step`. */
export function oursCommand(a: StepArgs): [string, string[]] {
  return cliCommand(a, ['bench', 'step', ...commonFlags(a)]);
}

/** argv of `relora bench ratio` (full vs relora in one process, steps alternating) for a's model. */
export function ratioCommand(a: StepArgs): [string, string[]] {
  return cliCommand(a, ['bench', 'ratio', ...shapeFlags(a)]);
}

export function torchCommand(a: StepArgs): [string, string[]] {
  return [pythonPath(), [join(REPO_ROOT, 'tools', 'reference', 'bench_torch.py'), '--threads', String(a.threads), ...commonFlags(a), ...(a.compile ? ['--compile'] : [])]];
}

export interface ChildResult<T = BenchRecord> {
  record: T | null;
  /** Why there is no record (exit status, signal, stderr tail). */
  error: string | null;
  /** CPU busy fraction (0..1) of the machine just before the run started. */
  busyBefore: number;
}

/** The last line of `stdout` that parses as a JSON object with a numeric `field`. */
export function parseRecord<T = BenchRecord>(stdout: string, field = 'tokens_per_s'): T | null {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      const r = JSON.parse(line) as Record<string, unknown>;
      if (typeof r[field] === 'number') return r as T;
    } catch {
      // Not the record line; keep looking.
    }
  }
  return null;
}

function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Fraction of all CPUs busy over `ms` (Linux /proc/stat; 0 where that is unavailable). */
export async function cpuBusyFraction(ms = 1000): Promise<number> {
  if (!existsSync('/proc/stat')) return 0;
  const a = cpuTimes();
  await sleep(ms);
  const b = cpuTimes();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/** Waits until the machine is at most `maxBusy` busy, or `maxWaitMs` passed; returns the last reading. */
export async function waitForQuiet(maxBusy: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let busy = await cpuBusyFraction();
  while (busy > maxBusy && Date.now() < deadline) busy = await cpuBusyFraction(2000);
  return busy;
}

export function runChild(cmd: [string, string[]], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd[1], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export interface QuietPolicy {
  /** Wait while more than this fraction of the CPUs is busy (1 disables waiting). */
  maxBusy: number;
  maxWaitMs: number;
}

export async function runBench<T = BenchRecord>(cmd: [string, string[]], quiet: QuietPolicy, field = 'tokens_per_s'): Promise<ChildResult<T>> {
  const busyBefore = quiet.maxBusy < 1 ? await waitForQuiet(quiet.maxBusy, quiet.maxWaitMs) : 0;
  const r = await runChild(cmd);
  const record = r.code === 0 ? parseRecord<T>(r.stdout, field) : null;
  if (record) return { record, error: null, busyBefore };
  const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
  const how = r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`;
  return { record: null, error: `${how}${tail ? `: ${tail}` : ''}`, busyBefore };
}
