/**
 * The paper's main comparison (Lialin et al., ReLoRA, ICLR 2024, Table 2) at our scale: full-rank,
 * LoRA, LoRA + warm start and ReLoRA trained on the shipped corpus at an equal token budget.
 *
 * Fair to each method: every method gets a learning-rate sweep (stage 1, first seed) and its best
 * learning rate (lowest final validation perplexity) is then trained with every seed (stage 2).
 * Each run is its own `relora train` process, so peak RSS and wall time are its own.
 *
 *   npm run study -- [--models llama_9m,llama_20m] [--seeds 0,1,2] [--lrs 1e-3,2e-3,4e-3]
 *     [--methods full,lora,lora_warm,relora] [--steps 1000] [--warm-start-steps 200]
 *     [--cycle-length 200] [--rank auto|N] [--parallel 1] [--threads N]
 *     [--config '{"micro_batch": 8}'] [--out results/study/NAME] [--assemble]
 *
 * Writes OUT/README.md (what was run, the tables), OUT/results.json (every run's summary),
 * OUT/metrics/<run>.jsonl (each run's metrics) and OUT/curves-<model>.svg (validation
 * perplexity against tokens, the best learning rate of each method, mean over seeds).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { NAMED_CONFIGS } from '../src/nn/config.ts';
import { lineChartSpec, renderSvg } from '../src/report/chart.ts';
import { configFlags, inParallel, list, meanStd, readRun, trainOnce, whole, type SavedRun } from './train-runs.ts';
import { scriptOptions } from '../src/cli/errors.ts';

const { values: args } = scriptOptions(() => parseArgs({
  options: {
    models: { type: 'string', default: 'llama_9m' },
    seeds: { type: 'string', default: '0,1,2' },
    lrs: { type: 'string', default: '1e-3,2e-3,4e-3' },
    methods: { type: 'string', default: 'full,lora,lora_warm,relora' },
    steps: { type: 'string', default: '1000' },
    'warm-start-steps': { type: 'string', default: '200' },
    'cycle-length': { type: 'string', default: '200' },
    /** A number, or auto: a quarter of the model's width (the paper's r = 128 at width 512). */
    rank: { type: 'string', default: 'auto' },
    parallel: { type: 'string', default: '1' },
    threads: { type: 'string' },
    config: { type: 'string', default: '{}' },
    out: { type: 'string', default: `results/study/${new Date().toISOString().slice(0, 10)}` },
    /** Train nothing: write the pages from the finished runs in OUT/metrics alone. */
    assemble: { type: 'boolean', default: false },
  },
}));

const METHODS = {
  full: { label: 'full-rank', flags: (_w: number) => ['--mode', 'full'] },
  lora: { label: 'LoRA', flags: (_w: number) => ['--mode', 'lora', '--warm-start-steps', '0'] },
  lora_warm: { label: 'LoRA + warm start', flags: (w: number) => ['--mode', 'lora', '--warm-start-steps', String(w)] },
  relora: { label: 'ReLoRA', flags: (w: number) => ['--mode', 'relora', '--warm-start-steps', String(w)] },
} as const;
type Method = keyof typeof METHODS;

interface RunSpec {
  id: string;
  model: string;
  method: Method;
  lr: number;
  seed: number;
}

type RunResult = RunSpec & SavedRun;

const extra = JSON.parse(args.config!) as Record<string, unknown>;

/** LoRA rank of `model`: --rank, or with auto a quarter of its width (32 for llama_9m, 64 for llama_20m). */
function rankOf(model: string): number {
  if (args.rank !== 'auto') return whole('rank', args.rank!);
  const shape = NAMED_CONFIGS[model];
  if (!shape) throw new Error(`--models: unknown model '${model}'; known: ${Object.keys(NAMED_CONFIGS).join(', ')}`);
  return shape.hiddenSize / 4;
}

function flagsOf(spec: RunSpec): string[] {
  return [
    '--model', spec.model, ...METHODS[spec.method].flags(whole('warm-start-steps', args['warm-start-steps']!)),
    '--lr', String(spec.lr), '--seed', String(spec.seed), '--steps', args.steps!, '--cycle-length', args['cycle-length']!,
    '--rank', String(rankOf(spec.model)), ...(args.threads ? ['--threads', args.threads] : []), ...configFlags(extra),
  ];
}

/**
 * Runs `specs` with at most `parallel` at a time; results in the order of `specs`. With
 * --assemble, only the runs already finished in OUT/metrics, read back without training.
 */
function runAll(specs: RunSpec[], outDir: string, parallel: number): Promise<RunResult[]> {
  const metricsDir = join(outDir, 'metrics');
  const todo = args.assemble ? specs.filter((spec) => existsSync(join(metricsDir, `${spec.id}.summary.json`))) : specs;
  return inParallel(todo.map((spec) => async () => ({
    ...spec, ...(args.assemble ? readRun(metricsDir, spec.id) : await trainOnce(spec.id, flagsOf(spec), metricsDir)),
  })), parallel);
}

const idOf = (model: string, method: Method, lr: number, seed: number) => `${model}-${method}-lr${lr}-seed${seed}`;

function tables(results: RunResult[], models: string[], methods: Method[], lrs: number[], seeds: number[], best: Map<string, number>): string {
  const out: string[] = [];
  for (const model of models) {
    out.push(`### ${model}: best learning rate of each method, ${seeds.length} seed(s)`, '',
      `| method | best lr | val. perplexity (mean ± std) | seeds | tokens | wall time (s, mean) | peak RSS (MiB, max) | trainable params | rank of ΣΔW at the end (LoRA rank ${rankOf(model)}) |`,
      '|---|---|---|---|---|---|---|---|---|');
    for (const method of methods) {
      const lr = best.get(`${model}/${method}`)!;
      const rs = results.filter((r) => r.model === model && r.method === method && r.lr === lr);
      const ppl = meanStd(rs.map((r) => r.summary.final_eval_ppl));
      const wall = meanStd(rs.map((r) => r.summary.elapsed_s)).mean;
      const rss = Math.max(...rs.map((r) => r.summary.peak_rss_bytes)) / 2 ** 20;
      const ranks = rs.map((r) => r.rank).filter((x): x is number => x !== null);
      out.push(`| ${METHODS[method].label} | ${lr} | ${ppl.mean.toFixed(2)}${Number.isNaN(ppl.std) ? '' : ` ± ${ppl.std.toFixed(2)}`} | ${rs.map((r) => r.seed).join(', ')} | ${rs[0].summary.tokens.toLocaleString('en-US')} | ${wall.toFixed(0)} | ${rss.toFixed(0)} | ${(rs[0].summary.params_trainable / 1e6).toFixed(2)}M | ${ranks.length ? ranks.join(', ') : 'n/a (full-rank)'} |`);
    }
    out.push('', `### ${model}: learning-rate sweep (seed ${seeds[0]}, final validation perplexity)`, '',
      `| method | ${lrs.map((lr) => `lr ${lr}`).join(' | ')} |`, `|---|${lrs.map(() => '---').join('|')}|`);
    for (const method of methods) {
      const cells = lrs.map((lr) => {
        const r = results.find((x) => x.model === model && x.method === method && x.lr === lr && x.seed === seeds[0]);
        return r ? r.summary.final_eval_ppl.toFixed(2) : '—';
      });
      out.push(`| ${METHODS[method].label} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

async function curves(results: RunResult[], model: string, methods: Method[], best: Map<string, number>, outDir: string): Promise<void> {
  const series = methods.map((method) => {
    const rs = results.filter((r) => r.model === model && r.method === method && r.lr === best.get(`${model}/${method}`));
    const points = rs[0].evals.map((e, i) => ({ x: e.tokens, y: meanStd(rs.map((r) => r.evals[i]?.ppl ?? NaN)).mean }));
    return { name: `${METHODS[method].label} (lr ${best.get(`${model}/${method}`)})`, points: points.filter((p) => Number.isFinite(p.y)) };
  });
  const svg = await renderSvg(lineChartSpec({
    title: `${model}: validation perplexity at equal token budgets (best lr of each method, mean over seeds)`,
    xTitle: 'training tokens',
    yTitle: 'validation perplexity',
    yLog: true,
    series,
  }));
  writeFileSync(join(outDir, `curves-${model}.svg`), svg);
}

async function main(): Promise<void> {
  const models = list('models', args.models!);
  const seeds = list('seeds', args.seeds!).map((s) => whole('seeds', s));
  const lrs = list('lrs', args.lrs!).map(Number);
  if (lrs.some((x) => !(x > 0))) throw new Error(`--lrs: expected positive numbers, got '${args.lrs}'`);
  let methods = list('methods', args.methods!).map((m) => {
    if (!(m in METHODS)) throw new Error(`--methods: unknown method '${m}'; known: ${Object.keys(METHODS).join(', ')}`);
    return m as Method;
  });
  const parallel = whole('parallel', args.parallel!);
  const outDir = resolve(args.out!);
  mkdirSync(join(outDir, 'metrics'), { recursive: true });
  const started = new Date();
  const t0 = Date.now();

  // Stage 1: the sweep, first seed only.
  const sweep: RunSpec[] = models.flatMap((model) => methods.flatMap((method) => lrs.map((lr) => ({ id: idOf(model, method, lr, seeds[0]), model, method, lr, seed: seeds[0] }))));
  const results = await runAll(sweep, outDir, parallel);
  // With --assemble a method may have no finished run at all; it is left out of the pages.
  methods = methods.filter((method) => models.every((model) => results.some((r) => r.model === model && r.method === method)));
  const best = new Map<string, number>();
  for (const model of models) {
    for (const method of methods) {
      const rs = results.filter((r) => r.model === model && r.method === method);
      best.set(`${model}/${method}`, rs.reduce((a, b) => (b.summary.final_eval_ppl < a.summary.final_eval_ppl ? b : a)).lr);
    }
  }
  // Stage 2: the other seeds at each method's best learning rate.
  const more: RunSpec[] = models.flatMap((model) => methods.flatMap((method) => seeds.slice(1).map((seed) => {
    const lr = best.get(`${model}/${method}`)!;
    return { id: idOf(model, method, lr, seed), model, method, lr, seed };
  })));
  results.push(...(await runAll(more, outDir, parallel)));

  const command = `npm run study -- ${process.argv.slice(2).join(' ')}`.trim();
  const minutes = (Date.now() - t0) / 60_000;
  writeFileSync(join(outDir, 'results.json'), `${JSON.stringify({ command, started: started.toISOString(), minutes, best: Object.fromEntries(best), results }, null, 1)}\n`);
  for (const model of models) await curves(results, model, methods, best, outDir);
  const readme = [
    `# Study: full-rank, LoRA, LoRA + warm start and ReLoRA at equal token budgets`,
    '',
    `Command: \`${command}\`  `,
    args.assemble
      ? `Assembled ${started.toISOString()} from the ${results.length} finished runs in metrics/ (each run's wall time is in the table).  `
      : `Started: ${started.toISOString()}; ${minutes.toFixed(1)} minutes of wall time (${results.length} runs, ${parallel} at a time).  `,
    `Settings: ${args.steps} updates per run; warm start ${args['warm-start-steps']} updates (LoRA + warm start and ReLoRA); ReLoRA cycle ${args['cycle-length']}; LoRA rank ${args.rank === 'auto' ? 'a quarter of the width' : args.rank}; other keys ${JSON.stringify(extra)} over the defaults of \`relora train\` (the shipped Brown corpus).`,
    'The learning rate is swept with the first seed; each method\'s best (lowest final validation perplexity) is then trained with the other seeds. ' +
      'The warm-start learning rate is half the swept one (the default). The validation set picks the learning rate and reports it, so the figures slightly favour every method alike.',
    '',
    tables(results, models, methods, lrs, seeds, best),
    ...models.map((m) => `![validation perplexity, ${m}](curves-${m}.svg)`),
    '',
  ].join('\n');
  writeFileSync(join(outDir, 'README.md'), readme);
  process.stdout.write(readme);
}

await main();
