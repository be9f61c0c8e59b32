/**
 * npm run bench:compare [-- --rounds N --stat best|median --micro-batch B --steps N --models a,b --modes full,relora,relora-bf16 --no-interleaved --markdown --out FILE]
 * Our training step vs PyTorch's (tools/reference/bench_torch.py, in tools/reference/.venv), same
 * machine, same threads, one child process per measurement. See src/bench/compare.ts.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { compareTable, ratioTable, runCompare, runInterleavedRatios, summarize, type RoundStat } from '../src/bench/compare.ts';
import { parseIntOption } from '../src/cli/errors.ts';

const { values: v } = parseArgs({
  options: {
    models: { type: 'string', default: 'llama_20m,llama_60m' },
    modes: { type: 'string', default: 'full,relora,relora-bf16' },
    'seq-len': { type: 'string', default: '256' },
    'micro-batch': { type: 'string', default: '8' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    stat: { type: 'string', default: 'best' },
    threads: { type: 'string', default: process.env.RELORA_THREADS ?? String(availableParallelism()) },
    'max-busy': { type: 'string', default: '0.25' },
    'max-wait': { type: 'string', default: '120' },
    'no-interleaved': { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});

const int = (name: string, s: string | undefined, min = 1): number => parseIntOption(`--${name}`, min)(String(s));

const stat = v.stat as RoundStat;
if (stat !== 'best' && stat !== 'median') throw new Error(`--stat: expected best or median, got "${v.stat}"`);
const started = new Date();
const compareOptions = {
  models: v.models!.split(','),
  modes: v.modes!.split(','),
  seqLen: int('seq-len', v['seq-len']),
  microBatch: int('micro-batch', v['micro-batch']),
  steps: int('steps', v.steps),
  warmup: int('warmup', v.warmup, 0),
  threads: int('threads', v.threads),
  rounds: int('rounds', v.rounds),
  quiet: { maxBusy: Number(v['max-busy']), maxWaitMs: 1000 * Number(v['max-wait']) },
  log: (s: string) => process.stderr.write(`${s}\n`),
};
const cases = await runCompare(compareOptions);
const interleaved = v['no-interleaved'] ? [] : await runInterleavedRatios(compareOptions);

const summaries = cases.map((c) => summarize(c, stat));
process.stdout.write(`bench:compare ${started.toISOString()}, ${v.threads} thread(s), seq ${v['seq-len']}, micro-batch ${v['micro-batch']}, ${v.steps} timed steps after ${v.warmup}, ${v.rounds} round(s) per side (${stat} round reported)\n\n`);
process.stdout.write(`${compareTable(summaries, v.markdown)}\n\n${ratioTable(summaries, v.markdown, interleaved)}\n`);
for (const r of interleaved) if (r.error) process.stdout.write(`error: ${r.model} ${r.mode}/full interleaved: ${r.error}\n`);
for (const c of cases) {
  for (const e of c.errors) process.stdout.write(`error: ${c.model} ${c.mode}: ${e}\n`);
  if (c.busyBefore > Number(v['max-busy'])) process.stdout.write(`note: ${c.model} ${c.mode} ran while the machine was ${(100 * c.busyBefore).toFixed(0)}% busy\n`);
}
if (v.out) writeFileSync(v.out, `${JSON.stringify({ started: started.toISOString(), options: v, cases, summaries, interleaved }, null, 1)}\n`);
if (cases.some((c) => c.errors.length) || interleaved.some((r) => r.error)) process.exitCode = 1;
