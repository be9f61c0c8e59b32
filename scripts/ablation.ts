/**
 * The rank / cycle-length ablation of ReLoRA (Lialin et al., ReLoRA, ICLR 2024, ablations): one
 * model, one seed, one learning rate and one token budget; every combination of LoRA rank r and
 * cycle length R (updates between merges) is a `relora train --mode relora` run of its own.
 *
 *   npm run ablation -- [--model llama_9m] [--ranks 8,32,128] [--cycles 50,200,500]
 *     [--steps 1000] [--warm-start-steps 100] [--lr 4e-3] [--seed 0] [--parallel 1]
 *     [--threads N] [--config '{"micro_batch": 8}'] [--out results/ablation] [--assemble]
 *
 * Writes OUT/README.md (what was run, the tables), OUT/results.json, OUT/metrics/<run>.jsonl and
 * two figures: OUT/curves.svg (validation perplexity against updates, every cell) and
 * OUT/final.svg (final validation perplexity against R, one line per rank). A stopped ablation
 * goes on where it was: finished runs are read back from OUT/metrics. With --assemble nothing is
 * trained: the pages are written from the finished runs alone, and the other cells say "not run".
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { lineChartSpec, renderSvg } from '../src/report/chart.ts';
import { configFlags, inParallel, list, readRun, trainOnce, whole, type SavedRun } from './train-runs.ts';
import { scriptOptions } from '../src/cli/errors.ts';

const { values: args } = scriptOptions(() => parseArgs({
  options: {
    model: { type: 'string', default: 'llama_9m' },
    ranks: { type: 'string', default: '8,32,128' },
    cycles: { type: 'string', default: '50,200,500' },
    steps: { type: 'string', default: '1000' },
    'warm-start-steps': { type: 'string', default: '100' },
    lr: { type: 'string', default: '4e-3' },
    seed: { type: 'string', default: '0' },
    parallel: { type: 'string', default: '1' },
    threads: { type: 'string' },
    config: { type: 'string', default: '{}' },
    out: { type: 'string', default: 'results/ablation' },
    assemble: { type: 'boolean', default: false },
  },
}));

interface Cell {
  rank: number;
  cycle: number;
  run: SavedRun;
}

function flagsOf(rank: number, cycle: number): string[] {
  return [
    '--model', args.model!, '--mode', 'relora', '--rank', String(rank), '--cycle-length', String(cycle),
    '--steps', args.steps!, '--warm-start-steps', args['warm-start-steps']!, '--lr', args.lr!, '--seed', args.seed!,
    ...(args.threads ? ['--threads', args.threads] : []), ...configFlags(JSON.parse(args.config!) as Record<string, unknown>),
  ];
}

function tables(cells: Cell[], ranks: number[], cycles: number[]): string {
  const at = (r: number, c: number) => cells.find((x) => x.rank === r && x.cycle === c)?.run;
  const grid = (title: string, value: (run: SavedRun) => string) => [
    `#### ${title}`, '',
    `| rank r \\ cycle R | ${cycles.map((c) => `R = ${c}`).join(' | ')} |`,
    `|---|${cycles.map(() => '---').join('|')}|`,
    ...ranks.map((r) => `| r = ${r} | ${cycles.map((c) => {
      const run = at(r, c);
      return run ? value(run) : 'not run';
    }).join(' | ')} |`),
    '',
  ];
  return [
    ...grid('Final validation perplexity', (run) => run.summary.final_eval_ppl.toFixed(2)),
    ...grid('Rank of ΣΔW = W − W_at_warm_start at the end (largest over the measured matrices)', (run) => String(run.rank ?? '—')),
    ...grid('Merges and resets', (run) => String(run.summary.merges)),
    ...grid('Wall time (s; the machine was shared, so only roughly comparable)', (run) => run.summary.elapsed_s.toFixed(0)),
    ...grid('Trainable parameters', (run) => `${(run.summary.params_trainable / 1e6).toFixed(2)}M`),
  ].join('\n');
}

async function figures(cells: Cell[], ranks: number[], cycles: number[], outDir: string): Promise<void> {
  const curves = await renderSvg(lineChartSpec({
    title: `${args.model}: ReLoRA validation perplexity, rank r × cycle length R`,
    xTitle: 'update',
    yTitle: 'validation perplexity',
    yLog: true,
    series: cells.map((c) => ({ name: `r ${c.rank}, R ${c.cycle}`, points: c.run.evals.filter((e) => e.step > 0).map((e) => ({ x: e.step, y: e.ppl })) })),
  }));
  writeFileSync(join(outDir, 'curves.svg'), curves);
  const final = await renderSvg(lineChartSpec({
    title: `${args.model}: final validation perplexity against cycle length R`,
    xTitle: 'cycle length R (updates between merges)',
    yTitle: 'final validation perplexity',
    series: ranks.map((r) => ({
      name: `rank ${r}`,
      markers: true,
      points: cells.filter((x) => x.rank === r).map((x) => ({ x: x.cycle, y: x.run.summary.final_eval_ppl })),
    })),
  }));
  writeFileSync(join(outDir, 'final.svg'), final);
}

async function main(): Promise<void> {
  const ranks = list('ranks', args.ranks!).map((s) => whole('ranks', s));
  const cycles = list('cycles', args.cycles!).map((s) => whole('cycles', s));
  const outDir = resolve(args.out!);
  const metricsDir = join(outDir, 'metrics');
  mkdirSync(metricsDir, { recursive: true });
  const started = new Date();
  const t0 = Date.now();
  const grid = ranks.flatMap((rank) => cycles.map((cycle) => ({ rank, cycle })));
  const idOf = (rank: number, cycle: number) => `${args.model}-r${rank}-R${cycle}-seed${args.seed}`;
  const todo = args.assemble ? grid.filter(({ rank, cycle }) => existsSync(join(metricsDir, `${idOf(rank, cycle)}.summary.json`))) : grid;
  const cells: Cell[] = await inParallel(todo.map(({ rank, cycle }) => async () => ({
    rank, cycle, run: args.assemble ? readRun(metricsDir, idOf(rank, cycle)) : await trainOnce(idOf(rank, cycle), flagsOf(rank, cycle), metricsDir),
  })), whole('parallel', args.parallel!));
  if (cells.length === 0) throw new Error(`${metricsDir}: no finished runs to assemble`);

  const command = `npm run ablation -- ${process.argv.slice(2).join(' ')}`.trim();
  const minutes = (Date.now() - t0) / 60_000;
  writeFileSync(join(outDir, 'results.json'), `${JSON.stringify({ command, started: started.toISOString(), minutes, cells }, null, 1)}\n`);
  await figures(cells, ranks, cycles, outDir);
  const s = cells[0].run.summary;
  const readme = [
    `# Ablation: ReLoRA rank r × cycle length R (${args.model})`,
    '',
    `Command: \`${command}\`  `,
    args.assemble
      ? `Assembled ${started.toISOString()} from the ${cells.length} finished runs in metrics/ (each run's wall time is in the table).  `
      : `Started: ${started.toISOString()}; ${minutes.toFixed(1)} minutes of wall time for the runs this invocation trained (${cells.length} cells).  `,
    `Settings: ${args.steps} updates of ${(s.tokens / s.steps).toLocaleString('en-US')} tokens (${s.tokens.toLocaleString('en-US')} tokens per run), the first ${args['warm-start-steps']} full-rank (warm start); lr ${args.lr}; seed ${args.seed}; other keys ${args.config} over the defaults of \`relora train\` (the shipped Brown corpus; alpha 32 for every rank, so the LoRA scale alpha / r changes with r, as in the paper).`,
    '',
    tables(cells, ranks, cycles),
    '![validation perplexity against updates, every cell](curves.svg)',
    '',
    '![final validation perplexity against R, one line per rank](final.svg)',
    '',
  ].join('\n');
  writeFileSync(join(outDir, 'README.md'), readme);
  process.stdout.write(readme);
}

await main();
