/**
 * npm run bench:ddp [-- --models llama_20m,llama_60m --steps 8 --skip 3 --seq-len 128 --batch 8
 *                      --net-model llama_20m --rates 10gbit,1gbit,100mbit --skip-net --rank 128 --markdown
 *                      --memory-models llama_60m --memory-steps 4 --skip-memory --skip-overlap]
 *
 * Data-parallel training on this machine (see README, "Several processes"):
 *  1. tokens/s of one process with 2 threads against `mpirun -np 2` with 1 thread each, full and
 *     relora, and the share of each update spent communicating (shared memory);
 *  2. a slow network, simulated: the ranks in a network namespace of this benchmark's own, MPI
 *     over TCP on that namespace's loopback, capped by a token bucket (tc tbf) — full against
 *     relora step time at each rate (needs root, `ip` and `tc`; the namespace is deleted after);
 *  3. the predicted communication per update for every named config up to llama_1b at 8 and 64
 *     nodes on 10, 100 and 400 Gbit/s (src/bench/ddp.ts), after checking that the bytes the runs
 *     measured are the ones the prediction uses;
 *  4. peak RSS of each rank of `mpirun -np 2`, optimizer state sharded (--shard-optimizer, ZeRO
 *     stage 1) against not, full and relora;
 *  5. whether a non-blocking all-reduce advances while the rank computes (what overlapping it
 *     with backward would need): scripts/ddp-overlap-probe.ts under `mpirun -np 2`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { predictCommunication, predictionTable } from '../src/bench/ddp.ts';
import { formatTable, median } from '../src/bench/table.ts';
import { parseIntOption, scriptOptions } from '../src/cli/errors.ts';
import { namedConfig } from '../src/nn/config.ts';
import { allReduceBytesPerUpdate } from '../src/parallel/gradients.ts';
import { trainingFootprint } from '../src/relora/accounting.ts';
import { resolveConfig } from '../src/train/config.ts';

const { values: v } = scriptOptions(() => parseArgs({
  options: {
    models: { type: 'string', default: 'llama_20m,llama_60m' },
    steps: { type: 'string', default: '8' },
    skip: { type: 'string', default: '3' },
    'seq-len': { type: 'string', default: '128' },
    batch: { type: 'string', default: '8' },
    'net-model': { type: 'string', default: 'llama_20m' },
    rates: { type: 'string', default: '10gbit,1gbit,100mbit' },
    'skip-net': { type: 'boolean', default: false },
    rank: { type: 'string', default: '128' },
    markdown: { type: 'boolean', default: false },
    'memory-models': { type: 'string', default: 'llama_60m' },
    'memory-steps': { type: 'string', default: '4' },
    'skip-memory': { type: 'boolean', default: false },
    'skip-overlap': { type: 'boolean', default: false },
  },
}));
const int = (name: string, s: string | undefined, min = 1): number => scriptOptions(() => parseIntOption(`--${name}`, min)(String(s)));
const steps = int('steps', v.steps), skip = int('skip', v.skip, 0), seqLen = int('seq-len', v['seq-len']), batch = int('batch', v.batch), rank = int('rank', v.rank);
if (skip >= steps) throw new Error(`--skip ${skip} leaves no timed update of --steps ${steps}`);
if (batch % 2) throw new Error(`--batch ${batch} must split over 2 processes`);
const md = v.markdown;
const ENTRY = fileURLToPath(new URL('../src/cli/entry.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MPI_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
const log = (s: string): void => void process.stderr.write(`${s}\n`);

interface Point {
  model: string;
  mode: 'full' | 'relora';
  np: number;
  /** Median seconds per update, tokens/s from it, median share spent communicating, bytes per update. */
  stepS: number;
  tokensPerS: number;
  commShare: number;
  bytes: number;
  /** The vocabulary of the run's tokenizer (the model's embedding rows). */
  vocab: number;
  /** Peak resident memory of each rank, in rank order (bytes). */
  peakRss: number[];
}

/** Loaded into every rank: its peak resident memory, printed as it exits. */
const PEAK_RSS_HOOK = `data:text/javascript,${encodeURIComponent(
  "process.on('exit', () => process.stderr.write(`peak-rss rank ${process.env.OMPI_COMM_WORLD_RANK ?? 0} ${process.resourceUsage().maxRSS * 1024}\\n`));",
)}`;

function peakRssByRank(stderr: string): number[] {
  const out: number[] = [];
  for (const m of stderr.matchAll(/^peak-rss rank (\d+) (\d+)$/gm)) out[Number(m[1])] = Number(m[2]);
  return out;
}

/** One short training run; `netns` runs it inside that namespace with MPI over TCP on its loopback. */
function run(model: string, mode: 'full' | 'relora', np: number, netns?: string, extra: string[] = [], updates = steps): Point {
  const out = mkdtempSync(join(tmpdir(), 'relora-bench-ddp-'));
  try {
    const args = [
      'train', '--model', model, '--mode', mode, '--steps', String(updates), '--seq-len', String(seqLen), '--micro-batch', String(batch / 2),
      '--batch-size', String(batch), '--threads', String(2 / np), '--rank', String(rank), '--eval-every', '100000', '--save-every', '100000',
      '--eval-tokens', String(seqLen), '--warmup-steps', '1', '--no-report', '--out', join(out, 'run'),
      ...(mode === 'relora' ? ['--warm-start-steps', '0', '--cycle-length', String(Math.ceil(updates / 2)), '--restart-warmup-steps', '1'] : []), ...extra,
    ];
    const node = [process.execPath, '--import', PEAK_RSS_HOOK, '--import', 'tsx', ENTRY, ...args];
    const tcp = netns ? ['--mca', 'btl', 'tcp,self', '--mca', 'btl_tcp_if_include', 'lo', '--mca', 'oob_tcp_if_include', 'lo'] : [];
    let argv = np === 1 ? node : ['mpirun', '--oversubscribe', ...tcp, '-np', String(np), ...node];
    if (netns) argv = ['ip', 'netns', 'exec', netns, ...argv];
    const r = spawnSync(argv[0], argv.slice(1), { cwd: ROOT, env: MPI_ENV, encoding: 'utf8', maxBuffer: 1 << 26, timeout: 900_000, killSignal: 'SIGKILL' });
    if (r.error) throw new Error(`${argv.join(' ')}: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}):\n${r.stderr.slice(-3000)}`);
    const recs = readFileSync(join(out, 'run', 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>)
      .filter((m) => m.type === 'train').slice(Math.min(skip, updates - 1));
    const tokens = batch * seqLen;
    const stepS = median(recs.map((m) => tokens / (m.tokens_per_s as number)));
    const commShare = np === 1 ? 0 : median(recs.map((m) => (m.comm_s as number) / (tokens / (m.tokens_per_s as number))));
    const vocab = (JSON.parse(readFileSync(join(out, 'run', 'model.json'), 'utf8')) as { vocabSize: number }).vocabSize;
    const p: Point = { model, mode, np, stepS, tokensPerS: tokens / stepS, commShare, bytes: np === 1 ? 0 : (recs[0].allreduce_bytes as number), vocab, peakRss: peakRssByRank(r.stderr) };
    log(`${model} ${mode} N=${np}${netns ? ` (${netns})` : ''}${extra.length ? ` ${extra.join(' ')}` : ''}: ${p.stepS.toFixed(3)} s/update, ${p.tokensPerS.toFixed(0)} tokens/s, ${(100 * p.commShare).toFixed(1)}% communicating, ${(p.bytes / 2 ** 20).toFixed(1)} MiB all-reduced, peak RSS ${p.peakRss.map(mib).join(' / ')} MiB`);
    return p;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const mib = (bytes: number | undefined): string => (bytes === undefined ? '?' : (bytes / 2 ** 20).toFixed(0));

/** "10gbit", "100mbit", "1.5gbit" → bits per second. */
function bitsPerSecond(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)bit$/i.exec(rate);
  if (!m) throw new Error(`--rates: "${rate}" is not a rate like 10gbit or 100mbit`);
  return Number(m[1]) * { k: 1e3, m: 1e6, g: 1e9 }[m[2].toLowerCase() as 'k' | 'm' | 'g'];
}

function sh(argv: string[]): void {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`);
}

/** Runs `fn` with a fresh network namespace whose loopback is capped at `rate`; always deletes it. */
function withCappedLoopback<T>(rate: string, fn: (ns: string) => T): T {
  const ns = `relora-bench-${process.pid}`;
  sh(['ip', 'netns', 'add', ns]);
  try {
    sh(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    // The bucket must hold a whole packet (loopback's MTU is 64 KiB: a smaller burst drops every
    // full-size segment, and TCP stalls) and about 1 ms of traffic, or high rates are not reached.
    const burst = Math.max(256 * 1024, Math.round(bitsPerSecond(rate) / 8 / 1000));
    sh(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', rate, 'burst', String(burst), 'latency', '100ms']);
    return fn(ns);
  } finally {
    sh(['ip', 'netns', 'delete', ns]);
  }
}

const started = new Date();
process.stdout.write(`bench:ddp ${started.toISOString()}: ${steps} updates of ${batch} × ${seqLen} tokens (median of the last ${steps - skip}), relora at rank ${rank} from update 0\n\n`);

// 1. Shared memory: one process with both cores against two with one each.
const points: Point[] = [];
const models = v.models.split(',').filter(Boolean);
for (const model of models) {
  for (const mode of ['full', 'relora'] as const) for (const np of [1, 2]) points.push(run(model, mode, np));
}
const rows = models.flatMap((model) => (['full', 'relora'] as const).map((mode) => {
  const one = points.find((p) => p.model === model && p.mode === mode && p.np === 1)!, two = points.find((p) => p.model === model && p.mode === mode && p.np === 2)!;
  return [model, mode, one.tokensPerS.toFixed(0), two.tokensPerS.toFixed(0), (two.tokensPerS / one.tokensPerS).toFixed(2), `${(100 * two.commShare).toFixed(1)}%`, (two.bytes / 2 ** 20).toFixed(1)];
}));
if (rows.length) process.stdout.write(`One machine, shared memory (N=1: 2 threads; N=2: 1 thread each):\n${formatTable(['model', 'mode', 'N=1 tok/s', 'N=2 tok/s', 'N=2/N=1', 'N=2 comm share', 'MiB all-reduced'], rows, md)}\n\n`);

// 2. A capped network.
if (!v['skip-net']) {
  const netRows: string[][] = [];
  for (const rate of v.rates.split(',')) {
    const [full, relora] = withCappedLoopback(rate, (ns) => [run(v['net-model'], 'full', 2, ns), run(v['net-model'], 'relora', 2, ns)]);
    points.push(full, relora);
    netRows.push([rate, full.stepS.toFixed(3), relora.stepS.toFixed(3), (relora.stepS / full.stepS).toFixed(2), `${(100 * full.commShare).toFixed(0)}%`, `${(100 * relora.commShare).toFixed(0)}%`]);
  }
  process.stdout.write(`${v['net-model']}, N=2 over TCP on a capped loopback (own network namespace, tc tbf):\n${formatTable(['rate', 'full s/update', 'relora s/update', 'relora/full', 'full comm share', 'relora comm share'], netRows, md)}\n\n`);
}

// 3. Predicted communication, after checking the measured bytes against the prediction's.
const defaults = resolveConfig({});
const lora = { rank, alpha: defaults.alpha, dropout: defaults.dropout, targetModules: defaults.target_modules };
const predicted = predictCommunication(lora, [8, 64], [10, 100, 400]);
const measured = points.filter((p, i) => p.np === 2 && points.findIndex((q) => q.np === 2 && q.model === p.model && q.mode === p.mode) === i);
const checks = measured.map((p) => {
  const expected = allReduceBytesPerUpdate(trainingFootprint(namedConfig(p.model, { vocabSize: p.vocab }), p.mode, lora).params_trainable);
  if (expected !== p.bytes) throw new Error(`${p.model} ${p.mode}: measured ${p.bytes} bytes per update, the prediction counts ${expected}`);
  return `${p.model} ${p.mode} (vocabulary ${p.vocab}): ${p.bytes.toLocaleString('en-US')} bytes per update, measured = counted`;
});
process.stdout.write(`All-reduced bytes per update, measured against the count the prediction uses:\n${checks.join('\n')}\n\n`);
process.stdout.write(`Predicted communication per update, ring all-reduce 2(N−1)/N · bytes / bandwidth, full / relora in ms (rank ${rank}):\n${predictionTable(predicted, [8, 64], [10, 100, 400], md)}\n`);

// 4. Peak memory of each rank, optimizer state sharded or not.
if (!v['skip-memory']) {
  const memorySteps = int('memory-steps', v['memory-steps']);
  const memRows: string[][] = [];
  for (const model of v['memory-models'].split(',').filter(Boolean)) {
    for (const mode of ['full', 'relora'] as const) {
      const plain = run(model, mode, 2, undefined, [], memorySteps), sharded = run(model, mode, 2, undefined, ['--shard-optimizer'], memorySteps);
      const moments = allReduceBytesPerUpdate(trainingFootprint(namedConfig(model, { vocabSize: plain.vocab }), mode, lora).params_trainable) * 2;
      memRows.push([model, mode, mib(moments), ...[0, 1].flatMap((r) => [mib(plain.peakRss[r]), mib(sharded.peakRss[r]), mib(plain.peakRss[r] - sharded.peakRss[r])])]);
    }
  }
  process.stdout.write(`\nPeak RSS per rank (MiB), mpirun -np 2 (1 thread each), ${memorySteps} updates and the final checkpoint, unsharded vs --shard-optimizer:\n` +
    `${formatTable(['model', 'mode', 'Adam moments (all)', 'rank 0', 'rank 0 sharded', 'rank 0 saved', 'rank 1', 'rank 1 sharded', 'rank 1 saved'], memRows, md)}\n`);
}

// 5. Would overlapping the all-reduce with backward hide it here?
if (!v['skip-overlap']) {
  const probe = fileURLToPath(new URL('./ddp-overlap-probe.ts', import.meta.url));
  const out = ['16', '64'].map((size) => {
    const r = spawnSync('mpirun', ['--oversubscribe', '-np', '2', process.execPath, '--import', 'tsx', probe, '--mib', size], { cwd: ROOT, env: MPI_ENV, encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) throw new Error(`the overlap probe failed (${r.status}):\n${r.stderr.slice(-2000)}`);
    return r.stdout.trim();
  });
  process.stdout.write(`\nA non-blocking all-reduce started before computing (scripts/ddp-overlap-probe.ts, 1 thread per rank):\n${out.join('\n')}\n`);
}
