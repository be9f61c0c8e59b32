/**
 * `relora compare`: the paper's main table in miniature — full-rank, LoRA, LoRA + warm start and
 * ReLoRA trained on the same data, token budget and seed, each in its own process (so peak RSS is
 * its own), then one table and one report overlaying their curves.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { addConfigOptions, resolveTrainConfig, withEngineFlags } from './train.ts';
import type { TrainSummary } from '../../train/trainer.ts';

interface Variant {
  label: string;
  dir: string;
  flags: string[];
}

function entryScript(): string {
  const here = fileURLToPath(import.meta.url);
  return join(here, '..', '..', here.endsWith('.ts') ? 'entry.ts' : 'entry.js');
}

function runChild(args: string[]): Promise<number> {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [...process.execArgv, entryScript(), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', fail);
    child.on('exit', (code, signal) => ok(code ?? (signal ? 128 : 1)));
  });
}

export function register(program: Command): void {
  const cmd = program
    .command('compare')
    .description('train full-rank, LoRA, LoRA + warm start and ReLoRA on the same data, budget and seed; print a table and write one report')
    .option('--config <file>', 'YAML or JSON config file (flags override it); its mode is ignored');
  addConfigOptions(cmd);
  cmd.action(async (flags: Record<string, unknown>, command: Command) => {
    const opts = withEngineFlags(flags, command);
    const base = resolveTrainConfig({ ...opts, mode: 'relora' }, opts.config ? String(opts.config) : 'flags');
    const outDir = resolve(opts.out ? String(opts.out) : base.out.replace(/relora-(\d)/, 'compare-$1'));
    if (existsSync(join(outDir, 'comparison.html'))) throw new UsageError(`output folder ${outDir} already holds a comparison; choose another --out`);
    mkdirSync(outDir, { recursive: true });
    // The shared config, as flags for each child (the resolved values, so every variant sees the same).
    const shared: string[] = [];
    const skip = new Set(['mode', 'out', 'warm_start_steps', 'warm_start_schedule', 'scheduler', 'grad_accum']);
    for (const [k, v] of Object.entries(base)) {
      if (skip.has(k) || v === undefined) continue;
      shared.push(`--${k.replace(/_/g, '-')}`, Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : String(v));
    }
    const S = String(base.warm_start_steps);
    const warm = ['--warm-start-steps', S, '--warm-start-schedule', base.warm_start_schedule];
    const variants: Variant[] = [
      { label: 'full-rank', dir: join(outDir, 'full'), flags: ['--mode', 'full'] },
      { label: 'LoRA', dir: join(outDir, 'lora'), flags: ['--mode', 'lora', '--warm-start-steps', '0'] },
      { label: 'LoRA + warm start', dir: join(outDir, 'lora-warm'), flags: ['--mode', 'lora', ...warm] },
      { label: 'ReLoRA', dir: join(outDir, 'relora'), flags: ['--mode', 'relora', ...warm] },
    ];
    for (const v of variants) {
      process.stderr.write(`\n=== ${v.label} → ${v.dir}\n`);
      const code = await runChild(['train', ...shared, ...v.flags, '--out', v.dir, '--no-report']);
      if (code !== 0) throw new Error(`the ${v.label} run failed (exit code ${code}); its folder is ${v.dir}`);
    }
    const rows = variants.map((v) => ({ v, s: JSON.parse(readFileSync(join(v.dir, 'summary.json'), 'utf8')) as TrainSummary }));
    const { writeComparisonReport } = await import('../../report/comparison.ts');
    const report = await writeComparisonReport(outDir, variants.map((v) => ({ label: v.label, dir: v.dir })));
    const head = ['method', 'val. ppl', 'tokens/s', 'peak RSS', 'trainable', 'state bytes'];
    const table = rows.map(({ v, s }) => [
      v.label, s.final_eval_ppl.toFixed(2), String(Math.round(s.tokens_per_s)), `${(s.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`,
      `${(s.params_trainable / 1e6).toFixed(2)}M`, `${(s.state_bytes / 2 ** 20).toFixed(1)} MiB`,
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
    const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    process.stdout.write(`\n${line(head)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${table.map(line).join('\n')}\n`);
    process.stdout.write(`\n${base.steps} updates of ${base.batch_size}×${base.seq_len} tokens each, seed ${base.seed}; unigram perplexity of the validation tokens ${rows[0].s.unigram_ppl.toFixed(1)}\nreport: ${report.html}\n`);
  });
}
