/**
 * npm run bench:scaling [-- --rounds N --micro-batch B --context-tokens N --steps N --rank R --lora-dropout P --skip-context --skip-largest --markdown --out FILE]
 * Tokens/s and peak RSS across model sizes and sequence lengths, full vs relora, and the largest
 * named config each mode trains here. See src/bench/scaling.ts.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { findLargest, largestTable, runContextSweep, runSizeSweep, scalingTable, type LargestResult } from '../src/bench/scaling.ts';
import { parseFloatOption, parseIntOption, scriptOptions } from '../src/cli/errors.ts';

const { values: v } = scriptOptions(() => parseArgs({
  options: {
    'micro-batch': { type: 'string', default: '8' },
    'context-tokens': { type: 'string', default: '2048' },
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '2' },
    threads: { type: 'string', default: process.env.RELORA_THREADS ?? String(availableParallelism()) },
    'max-busy': { type: 'string', default: '0.25' },
    'max-wait': { type: 'string', default: '120' },
    'memory-fraction': { type: 'string', default: '0.85' },
    rank: { type: 'string', default: '128' },
    'lora-dropout': { type: 'string' },
    'skip-context': { type: 'boolean', default: false },
    'skip-largest': { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
}));

const int = (name: string, s: string | undefined, min = 1): number => scriptOptions(() => parseIntOption(`--${name}`, min)(String(s)));

const fraction = Number(v['memory-fraction']);
if (!(fraction > 0 && fraction <= 1)) throw new Error(`--memory-fraction: expected a number in (0, 1], got "${v['memory-fraction']}"`);
const opts = {
  microBatch: int('micro-batch', v['micro-batch']),
  rank: int('rank', v.rank),
  ...(v['lora-dropout'] !== undefined ? { loraDropout: scriptOptions(() => parseFloatOption('--lora-dropout')(v['lora-dropout']!)) } : {}),
  contextTokens: int('context-tokens', v['context-tokens']),
  steps: int('steps', v.steps),
  warmup: int('warmup', v.warmup, 0),
  rounds: int('rounds', v.rounds),
  threads: int('threads', v.threads),
  quiet: { maxBusy: Number(v['max-busy']), maxWaitMs: 1000 * Number(v['max-wait']) },
  memoryFraction: fraction,
  log: (s: string) => process.stderr.write(`${s}\n`),
};
const started = new Date();
const sizes = await runSizeSweep(opts);
const context = v['skip-context'] ? [] : await runContextSweep(opts);
const largest: LargestResult[] = [];
if (!v['skip-largest']) for (const mode of ['full', 'relora'] as const) largest.push(await findLargest(opts, mode));

const md = v.markdown;
process.stdout.write(`bench:scaling ${started.toISOString()}, ${opts.threads} thread(s), relora at rank ${opts.rank}${opts.loraDropout !== undefined ? `, LoRA dropout ${opts.loraDropout}` : ''}, ${opts.steps} timed steps after ${opts.warmup}, best of ${opts.rounds} round(s) per point\n\n`);
process.stdout.write(`Model size (sequence 256, micro-batch ${opts.microBatch}):\n${scalingTable(sizes, 'model', md)}\n\n`);
if (context.length) process.stdout.write(`Context (llama_60m, ${opts.contextTokens} tokens per step):\n${scalingTable(context, 'seq', md)}\n\n`);
if (largest.length) process.stdout.write(`Largest named config (micro-batch 1, sequence 256, one warm-up + one timed step):\n${largestTable(largest, md)}\n`);
const failed = [...sizes, ...context].filter((p) => !p.record);
for (const p of failed) process.stdout.write(`error: ${p.model} ${p.mode} seq ${p.seqLen}: ${p.error}\n`);
if (v.out) writeFileSync(v.out, `${JSON.stringify({ started: started.toISOString(), options: v, sizes, context, largest }, null, 1)}\n`);
if (failed.length) process.exitCode = 1;
