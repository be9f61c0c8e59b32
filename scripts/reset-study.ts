/**
 * How big are the steps right after a ReLoRA optimizer reset? (docs/method.md, "Optimizer reset".)
 *
 * Trains the same ReLoRA run once per `optimizer_reset` variant and records, around every reset,
 * the largest |ΔA| (change of any LoRA A entry in one update), the loss and the gradient norm.
 * Right after a merge B = 0, so A's gradient is exactly zero in the first update: an entry whose
 * first moment survived the reset while its second moment did not (independent masks, the
 * reference code) then moves by lr·m̂/ε.
 *
 *   node --import tsx scripts/reset-study.ts [--model llama_20m] [--steps 1000] [--cycle-length 200]
 *        [--warm-start-steps 200] [--variants reference,shared,zero] [--after 3] [--before 5]
 *        [--threads N] [--config '{"warmup_steps": 10}'] [--out results/reset-study/default]
 *
 * Writes OUT/summary.json, OUT/summary.md (one table) and OUT/loss-around-resets.svg.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { LlamaForCausalLM } from '../src/nn/llama.ts';
import { lineChartSpec, renderSvg } from '../src/report/chart.ts';
import { loraLayers } from '../src/relora/wrap.ts';
import { resolveConfig, type TrainConfigInput } from '../src/train/config.ts';
import type { MetricRecord } from '../src/train/metrics.ts';
import { train, type RankHook } from '../src/train/trainer.ts';
import { scriptOptions } from '../src/cli/errors.ts';

const { values: args } = scriptOptions(() => parseArgs({
  options: {
    model: { type: 'string' },
    steps: { type: 'string', default: '1000' },
    'cycle-length': { type: 'string' },
    'warm-start-steps': { type: 'string' },
    variants: { type: 'string', default: 'reference,shared,zero' },
    after: { type: 'string', default: '3' },
    before: { type: 'string', default: '5' },
    threads: { type: 'string' },
    out: { type: 'string', default: 'results/reset-study/default' },
    /** Any other config keys, as a JSON object. */
    config: { type: 'string', default: '{}' },
  },
}));

function count(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new Error(`--${name}: expected a whole number, got '${text}'`);
  return Number(text);
}

interface UpdateTrace {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Largest |ΔA| over every LoRA A entry in this update (NaN in the full-rank warm start). */
  maxDeltaA: number;
}

interface VariantResult {
  variant: string;
  finalPpl: number;
  elapsedS: number;
  resetsAfter: number[];
  /** Per reset: largest |ΔA| in the `after` updates that follow it. */
  maxDeltaAAfter: number[];
  /** Per reset: largest |ΔA| in the `before` updates before it (the normal size of a step). */
  maxDeltaABefore: number[];
  /** Per reset: the largest loss and gradient norm in the `after` updates, and the loss just before. */
  lossBefore: number[];
  maxLossAfter: number[];
  maxGradNormAfter: number[];
  trace: UpdateTrace[];
}

/** Follows the LoRA A matrices from update to update (plugged in where the rank hook goes). */
class DeltaTracker implements RankHook {
  private model: LlamaForCausalLM | null = null;
  private previous = new Map<string, Float32Array>();

  start(model: LlamaForCausalLM): void {
    this.model = model;
    this.snapshot();
  }

  measure(): [] {
    return [];
  }

  /** Re-read A after a merge (A is re-drawn there: that is not a step of the optimizer). */
  snapshot(): void {
    if (!this.model) return;
    for (const [name, layer] of loraLayers(this.model)) this.previous.set(name, Float32Array.from(layer.loraA.data));
  }

  /** Largest |A − A_previous| since the last call; then A becomes the new previous. */
  maxDelta(): number {
    if (!this.model) return NaN;
    let max = 0;
    for (const [name, layer] of loraLayers(this.model)) {
      const a = layer.loraA.data;
      const prev = this.previous.get(name)!;
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - prev[i]);
        if (d > max) max = d;
      }
      prev.set(a);
    }
    return max;
  }
}

async function runVariant(variant: string, base: TrainConfigInput, outDir: string): Promise<VariantResult> {
  // Run folders (checkpoints) stay out of results/.
  const runDir = join(tmpdir(), 'relora-reset-study', basename(outDir), variant);
  rmSync(runDir, { recursive: true, force: true });
  const cfg = resolveConfig({ ...base, optimizer_reset: variant, out: runDir }, `reset study (${variant})`);
  const tracker = new DeltaTracker();
  const trace: UpdateTrace[] = [];
  const resetsAfter: number[] = [];
  const t0 = Date.now();
  const summary = await train({
    config: cfg,
    runDir,
    rankHook: tracker,
    log: (s) => process.stderr.write(`[${variant}] ${s}\n`),
    hooks: {
      onMetric(r: MetricRecord) {
        if (r.type !== 'train') return;
        trace.push({ step: r.step, loss: r.loss, gradNorm: r.grad_norm, lr: r.lr, maxDeltaA: r.phase === 'relora' ? tracker.maxDelta() : NaN });
      },
      onRestart(r) {
        resetsAfter.push(r.step);
        tracker.snapshot();
      },
    },
  });
  const after = count('after', args.after)!;
  const before = count('before', args.before)!;
  const at = (step: number) => trace.findIndex((t) => t.step === step);
  const window = (from: number, n: number) => trace.slice(Math.max(0, from), Math.max(0, from + n));
  const maxOf = (xs: number[]) => xs.reduce((a, b) => Math.max(a, b), -Infinity);
  return {
    variant,
    finalPpl: summary.final_eval_ppl,
    elapsedS: (Date.now() - t0) / 1000,
    resetsAfter,
    maxDeltaAAfter: resetsAfter.map((s) => maxOf(window(at(s) + 1, after).map((t) => t.maxDeltaA))),
    // The update just before a reset used the zero learning rate of the restart warm-up: skip it.
    maxDeltaABefore: resetsAfter.map((s) => maxOf(window(at(s) - before, before - 1).map((t) => t.maxDeltaA))),
    lossBefore: resetsAfter.map((s) => trace[at(s)].loss),
    maxLossAfter: resetsAfter.map((s) => maxOf(window(at(s) + 1, after).map((t) => t.loss))),
    maxGradNormAfter: resetsAfter.map((s) => maxOf(window(at(s) + 1, after).map((t) => t.gradNorm))),
    trace,
  };
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 || (Math.abs(x) < 0.01 && x !== 0) ? x.toExponential(2) : x.toFixed(3);
}

function markdown(results: VariantResult[], command: string, after: number): string {
  const lines = [
    `# Optimizer reset study`,
    '',
    `Command: \`${command}\`  `,
    `Date: ${new Date().toISOString()}`,
    '',
    `Per reset (merge after update u): largest |ΔA| over all LoRA A entries in the ${after} updates after the reset, ` +
      'the same in the updates before it (a normal step), the loss just before and the largest loss and gradient norm after.',
    '',
    '| variant | reset after | max abs ΔA after | max abs ΔA before | loss before | max loss after | max grad norm after |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    r.resetsAfter.forEach((s, i) => {
      lines.push(`| ${r.variant} | ${s} | ${fmt(r.maxDeltaAAfter[i])} | ${fmt(r.maxDeltaABefore[i])} | ${fmt(r.lossBefore[i])} | ${fmt(r.maxLossAfter[i])} | ${fmt(r.maxGradNormAfter[i])} |`);
    });
  }
  lines.push('', '| variant | final validation perplexity | wall time (s) |', '|---|---|---|');
  for (const r of results) lines.push(`| ${r.variant} | ${r.finalPpl.toFixed(2)} | ${r.elapsedS.toFixed(0)} |`);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const outDir = resolve(args.out!);
  mkdirSync(outDir, { recursive: true });
  const base: TrainConfigInput = {
    mode: 'relora',
    steps: count('steps', args.steps),
    ...(args.model ? { model: args.model } : {}),
    ...(args['cycle-length'] ? { cycle_length: count('cycle-length', args['cycle-length']) } : {}),
    ...(args['warm-start-steps'] ? { warm_start_steps: count('warm-start-steps', args['warm-start-steps']) } : {}),
    ...(args.threads ? { threads: count('threads', args.threads) } : {}),
    rank_sample: 'none',
    save_every: 1_000_000,
    ...(JSON.parse(args.config!) as TrainConfigInput),
  };
  const variants = args.variants!.split(',').map((v) => v.trim()).filter(Boolean);
  const results: VariantResult[] = [];
  for (const v of variants) {
    results.push(await runVariant(v, base, outDir));
    // Each variant is written as soon as it is done, so a stopped study keeps what it measured.
    writeFileSync(join(outDir, 'summary.json'), `${JSON.stringify({ base, results }, null, 1)}\n`);
  }
  const command = `node --import tsx scripts/reset-study.ts ${process.argv.slice(2).join(' ')}`.trim();
  writeFileSync(join(outDir, 'summary.md'), markdown(results, command, count('after', args.after)!));
  const svg = await renderSvg(lineChartSpec({
    title: 'Training loss per update, by optimizer reset',
    xTitle: 'update',
    yTitle: 'training loss',
    series: results.map((r) => ({ name: r.variant, points: r.trace.map((t) => ({ x: t.step, y: t.loss })) })),
    vRules: results[0]?.resetsAfter ?? [],
  }));
  writeFileSync(join(outDir, 'loss-around-resets.svg'), svg);
  process.stdout.write(markdown(results, command, count('after', args.after)!));
}

await main();
