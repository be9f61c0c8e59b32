/**
 * npm run bench:compare [-- --models a,b --modes full,relora,relora:r32 --setups LIST --rounds N --steps N --micro-batch B --seq-len T --threads N --gemm-reps N --no-ratio --markdown --out FILE]
 * Our training step, fp32 and bf16, against PyTorch's eager fp32, autocast bf16 and torch.compile
 * fp32/bf16 (tools/reference/bench_torch.py in tools/reference/.venv), same machine and threads,
 * one child process per measurement, setups interleaved (src/bench/compare-setups.ts). Then our
 * relora/full step-time ratio in each precision, both models in one process (`relora bench ratio`).
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ratioCommand, runBench } from '../src/bench/child.ts';
import { parseRowMode, runSetupCompare, SETUPS, setupTable, summarizeRow, type RowSpec } from '../src/bench/compare-setups.ts';
import type { StepRatioRecord } from '../src/bench/step-ratio.ts';
import { parseIntOption, scriptOptions } from '../src/cli/errors.ts';
import { setOpenMpWaitPolicy } from '../src/engine/backends/native.ts';

const { values: v } = scriptOptions(() => parseArgs({
  options: {
    models: { type: 'string', default: 'llama_20m,llama_60m' },
    modes: { type: 'string', default: 'full,relora,relora:r32' },
    setups: { type: 'string', default: SETUPS.map((s) => s.label).join(',') },
    'seq-len': { type: 'string', default: '256' },
    'micro-batch': { type: 'string', default: '8' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '1' },
    'lora-dropout': { type: 'string', default: '0.1' },
    'gemm-reps': { type: 'string', default: '5' },
    threads: { type: 'string', default: process.env.RELORA_THREADS ?? String(availableParallelism()) },
    'max-busy': { type: 'string', default: '1' },
    'max-wait': { type: 'string', default: '0' },
    'no-ratio': { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
}));

// Both sides' OpenMP threads spin as relora's do (src/engine/backends/native.ts): the children
// inherit this process's GOMP_SPINCOUNT, so PyTorch runs with the same wait policy.
setOpenMpWaitPolicy();

const int = (name: string, s: string | undefined, min = 1): number => scriptOptions(() => parseIntOption(`--${name}`, min)(String(s)));
const wanted = v.setups!.split(',');
const setups = SETUPS.filter((s) => wanted.includes(s.label));
for (const w of wanted) if (!SETUPS.some((s) => s.label === w)) throw new Error(`--setups: unknown setup "${w}"; expected some of ${SETUPS.map((s) => s.label).join(', ')}`);
const rows: RowSpec[] = v.models!.split(',').flatMap((model) => v.modes!.split(',').map((m) => ({ model, ...parseRowMode(m) })));
const started = new Date();
const o = {
  rows, setups,
  seqLen: int('seq-len', v['seq-len']), microBatch: int('micro-batch', v['micro-batch']), steps: int('steps', v.steps), warmup: int('warmup', v.warmup, 0),
  threads: int('threads', v.threads), rounds: int('rounds', v.rounds), loraDropout: Number(v['lora-dropout']), gemmReps: int('gemm-reps', v['gemm-reps']),
  quiet: { maxBusy: Number(v['max-busy']), maxWaitMs: 1000 * Number(v['max-wait']) },
  log: (s: string) => process.stderr.write(`${s}\n`),
};
const measured = await runSetupCompare(o);
const summaries = measured.map((r) => summarizeRow(r, setups));

// relora's relora/full step ratio, both steps alternating in one process, per precision and relora row.
const ratios: string[] = [];
if (!v['no-ratio']) {
  for (const row of rows.filter((r) => r.mode === 'relora')) {
    for (const precision of ['fp32', 'bf16'] as const) {
      o.log(`${row.model} relora r${row.rank}/full ${precision}, interleaved in one process`);
      const args = { model: row.model, mode: 'relora', seqLen: o.seqLen, microBatch: o.microBatch, steps: o.steps, warmup: o.warmup, threads: o.threads, rank: row.rank!, loraDropout: o.loraDropout, precision };
      const r = await runBench<StepRatioRecord>(ratioCommand(args), o.quiet, 'ratio_of_medians');
      ratios.push(r.record
        ? `${row.model} r${row.rank} ${precision}: relora/full step time ${r.record.ratio_of_medians.toFixed(2)} (pairs ${r.record.pair_ratio_min.toFixed(2)}–${r.record.pair_ratio_max.toFixed(2)})`
        : `${row.model} r${row.rank} ${precision}: error ${r.error}`);
    }
  }
}

const load = (await import('node:os')).loadavg()[0];
process.stdout.write(`bench:compare ${started.toISOString()}, ${v.threads} thread(s), seq ${v['seq-len']}, micro-batch ${v['micro-batch']}, ${v.steps} timed steps after ${v.warmup}, ${v.rounds} round(s) per setup (best round reported), LoRA dropout ${v['lora-dropout']}; load average ${load.toFixed(1)} at the end\n\n`);
process.stdout.write(`${setupTable(summaries, setups, v.markdown)}\n\n`);
for (const line of ratios) process.stdout.write(`${line}\n`);
for (const r of measured) {
  for (const e of r.errors) process.stdout.write(`error: ${r.model} ${r.mode}: ${e}\n`);
  if (r.busyBefore > o.quiet.maxBusy) process.stdout.write(`note: ${r.model} ${r.mode} ran while the machine was ${(100 * r.busyBefore).toFixed(0)}% busy\n`);
}
if (v.out) writeFileSync(v.out, `${JSON.stringify({ started: started.toISOString(), options: v, rows: measured, ratios }, null, 1)}\n`);
if (measured.some((r) => r.errors.length)) process.exitCode = 1;
