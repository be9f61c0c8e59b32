/**
 * `relora train`: every config key is also a flag (kebab-case); flags override the config file;
 * the resolved config goes into the run folder.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CONFIG_KEYS, ConfigError, resolveConfig, TrainConfigSchema, type ParsedConfig, type TrainConfig } from '../../train/config.ts';
import { makeRankHook } from '../../train/rank-hook.ts';
import { readRunConfig } from '../../train/run-folder.ts';
import { SIGNAL_EXIT_CODES, StopSignal } from '../../train/stop-signal.ts';
import { testHook } from '../../train/test-hooks.ts';
import { worldCommunicator } from '../../parallel/launch.ts';
import { train, type TrainSummary } from '../../train/trainer.ts';
import { UsageError } from '../errors.ts';

const LIST_KEYS = new Set(['data', 'validation', 'target_modules', 'rank_sample']);
/** Boolean keys: the bare flag means true. */
const BOOL_KEYS = new Set(['frozen_bf16', 'shard_optimizer']);
const STRING_KEYS = new Set(['mode', 'scheduler', 'optimizer_reset', 'backend', 'text_field', 'txt_mode', 'tokenizer', 'out']);

export const flagOf = (key: string): string => `--${key.replace(/_/g, '-')}`;
const keyOfAttr = (attr: string): string => attr.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A flag's text as a config value: numbers and JSON where they parse, lists split on commas. */
function flagValue(key: string, text: string): unknown {
  if (LIST_KEYS.has(key)) {
    if (key === 'rank_sample' && ['default', 'all', 'none'].includes(text)) return text;
    return text.split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (STRING_KEYS.has(key)) return text;
  if (key === 'model') return text.trim().startsWith('{') ? safeJson(key, text) : text;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim())) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}

function safeJson(key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${flagOf(key)}: not valid JSON: ${text}`);
  }
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${path}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config ${path}: not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new UsageError(`--config ${path}: expected a mapping of keys to values at the top level`);
  return raw as Record<string, unknown>;
}

/** The help's sections; every config key is in one. */
const HELP_GROUPS: [heading: string, keys: (keyof ParsedConfig)[]][] = [
  ['Model and method:', ['model', 'init_from', 'vocab_size', 'mode', 'rank', 'alpha', 'dropout', 'target_modules', 'frozen_bf16']],
  ['Data and tokenizer:', ['data', 'validation', 'val_fraction', 'text_field', 'txt_mode', 'data_shard_tokens', 'tokenizer', 'tokenizer_vocab_size']],
  ['Length and batches:', ['seq_len', 'micro_batch', 'batch_size', 'steps', 'tokens']],
  ['Learning rate and optimizer:', ['lr', 'warm_start_lr', 'scheduler', 'warmup_steps', 'restart_warmup_steps', 'min_lr_ratio', 'warm_start_steps', 'warm_start_schedule', 'cycle_length', 'optimizer_reset', 'weight_decay', 'clip_norm', 'max_skipped_updates']],
  ['Evaluation, checkpoints and output:', ['eval_every', 'eval_tokens', 'save_every', 'keep_checkpoints', 'rank_sample', 'out']],
  ['Compute and randomness:', ['seed', 'backend', 'threads', 'precision', 'shard_optimizer']],
];

function defaultText(v: unknown): string {
  return Array.isArray(v) ? v.join(',') : String(v);
}

/** Add one option per config key to `cmd`, described and grouped in its help. */
export function addConfigOptions(cmd: Command): Command {
  const groupOf = new Map(HELP_GROUPS.flatMap(([heading, keys]) => keys.map((k) => [k as string, heading])));
  for (const key of CONFIG_KEYS) {
    const field = TrainConfigSchema.shape[key];
    const fallback = field instanceof z.ZodDefault ? ` (default ${defaultText(field.def.defaultValue)})` : '';
    const description = `${field.description ?? `config key ${key}`}${fallback}`;
    cmd.addOption(new Option(`${flagOf(key)} ${BOOL_KEYS.has(key) ? '[value]' : '<value>'}`, description).helpGroup(groupOf.get(key) ?? 'Other config keys:'));
  }
  return cmd;
}

/** Config file + flags → the raw object the schema validates (flags win). */
export function rawConfigFrom(opts: Record<string, unknown>): Record<string, unknown> {
  const raw: Record<string, unknown> = opts.config ? readConfigFile(String(opts.config)) : {};
  for (const [attr, v] of Object.entries(opts)) {
    const key = keyOfAttr(attr);
    if (!(CONFIG_KEYS as string[]).includes(key) || v === undefined) continue;
    raw[key] = flagValue(key, String(v));
  }
  // The environment's backend counts where neither a flag nor the file names one.
  if (raw.backend === undefined && process.env.RELORA_BACKEND) raw.backend = process.env.RELORA_BACKEND;
  return raw;
}

/**
 * `--backend` and `--threads` are also the program's global options, which commander parses
 * wherever they stand on the command line: a command that keeps them in its config takes them
 * from there.
 */
export function withEngineFlags(opts: Record<string, unknown>, cmd: Command): Record<string, unknown> {
  const globals = cmd.optsWithGlobals() as { backend?: string; threads?: number };
  return {
    ...opts,
    ...(globals.backend !== undefined ? { backend: globals.backend } : {}),
    ...(globals.threads !== undefined ? { threads: globals.threads } : {}),
  };
}

function timestamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

export function resolveTrainConfig(opts: Record<string, unknown>, source: string): TrainConfig {
  const raw = rawConfigFrom(opts);
  if (raw.out === undefined) raw.out = `runs/${String(raw.mode ?? 'relora')}-${timestamp()}`;
  try {
    return resolveConfig(raw, source);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

export function printSummary(s: TrainSummary, reportPath: string | null): void {
  const out = process.stdout;
  if (Number.isFinite(s.final_eval_loss)) {
    out.write(`\nfinal validation perplexity ${s.final_eval_ppl.toFixed(2)} (loss ${s.final_eval_loss.toFixed(4)}); unigram perplexity of the same tokens ${s.unigram_ppl.toFixed(1)}\n`);
  } else {
    out.write(`\nno final evaluation (the run stopped early); unigram perplexity of the validation tokens ${s.unigram_ppl.toFixed(1)}\n`);
  }
  out.write(`${s.steps} updates, ${s.tokens.toLocaleString('en-US')} tokens in ${(s.elapsed_s / 60).toFixed(1)} min (${Math.round(s.tokens_per_s)} tokens/s), ${s.merges} merges, ${s.resets} optimizer resets, peak RSS ${(s.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB\n`);
  out.write(`run folder: ${s.run_dir}\n`);
  if (reportPath) out.write(`report: ${reportPath}\n`);
}

export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('train a LLaMA model (full, LoRA or ReLoRA); with no arguments, a small ReLoRA run on the shipped Brown corpus')
    .option('--config <file>', 'YAML or JSON config file (flags override it)')
    .option('--resume <run_dir>', 'continue the latest valid checkpoint of a run folder, with its saved config')
    .option('--warm-start <checkpoint>', 'start the LoRA/ReLoRA phase from a full-rank checkpoint (folder or run folder)')
    .option('--no-report', 'do not write report.html at the end')
    .option('--force', "start even when the estimated memory exceeds this machine's");
  addConfigOptions(cmd);
  cmd.action(async (flags: Record<string, unknown>, command: Command) => {
    const opts = withEngineFlags(flags, command);
    // Installed before anything is read and kept until the process ends: see stop-signal.ts for
    // what a signal does in each stage of the run (set-up, training, finishing).
    const stop = new StopSignal((s) => process.stderr.write(`${s}\n`));
    stop.install();
    let cfg: TrainConfig;
    let runDir: string;
    if (opts.resume) {
      runDir = resolve(String(opts.resume));
      try {
        cfg = readRunConfig(runDir);
      } catch (e) {
        throw new UsageError(`--resume: ${(e as Error).message}`);
      }
      const changed = Object.keys(opts).filter((a) => (CONFIG_KEYS as string[]).includes(keyOfAttr(a)) && !['backend', 'threads', 'shard_optimizer'].includes(keyOfAttr(a)));
      if (changed.length || opts.config) throw new UsageError(`--resume uses the run's saved config; remove ${changed.map((a) => flagOf(keyOfAttr(a))).join(', ') || '--config'}`);
      if (opts.backend) cfg.backend = opts.backend as TrainConfig['backend'];
      if (opts.threads) cfg.threads = Number(opts.threads);
      // Where the moments live does not change the run: a checkpoint holds all of them.
      if (opts.shardOptimizer !== undefined) cfg.shard_optimizer = flagValue('shard_optimizer', String(opts.shardOptimizer)) === true;
    } else {
      cfg = resolveTrainConfig(opts, opts.config ? String(opts.config) : 'flags');
      runDir = resolve(cfg.out);
    }
    const summary = await train({
      config: cfg,
      runDir,
      resume: Boolean(opts.resume),
      warmStartFrom: opts.warmStart ? resolve(String(opts.warmStart)) : undefined,
      rankHook: makeRankHook(cfg.rank_sample),
      stopSignal: stop,
      force: opts.force === true,
    });
    let reportPath: string | null = null;
    testHook('finish:report');
    // In a data-parallel job (mpirun) rank 0 writes the report and prints; the other ranks only train.
    if (worldCommunicator().rank !== 0) {
      if (summary.interrupted) process.exitCode = SIGNAL_EXIT_CODES[summary.interrupted_by ?? 'SIGINT'];
      return exitAfterRun();
    }
    if (opts.report !== false) {
      const { writeRunReport } = await import('../../report/run-report.ts');
      reportPath = (await writeRunReport(runDir)).html;
    }
    printSummary(summary, reportPath);
    // A signal that arrived during the synchronous work above waits in libuv's signal pipe until
    // the event loop polls again; signal handles do not keep the loop alive, so without another
    // poll the process would exit with it unread. Two check-phase turns put one poll between them.
    for (let turn = 0; turn < 2; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
    if (summary.interrupted) {
      process.stdout.write(`interrupted by ${summary.interrupted_by ?? 'a signal'} after update ${summary.steps}; continue with: relora train --resume ${runDir}\n`);
      process.exitCode = SIGNAL_EXIT_CODES[summary.interrupted_by ?? 'SIGINT'];
    } else if (stop.requested) {
      // The signal came when no update was left to stop: the run is complete, so it ends as one.
      process.stdout.write(`${stop.requested} received after the last update: the run had already finished, so its summary and report were written\n`);
    }
    return exitAfterRun();
  });
}

/**
 * Ends the process once the run's files are all written. Left to end by itself, Node closes its
 * signal handles early in its teardown, and a SIGINT / SIGTERM landing in the milliseconds after
 * that takes the default action: a finished run would end "killed by signal" (exit 130 / 143 to the
 * shell). process.exit skips that teardown; 'exit' listeners (MPI finalise, the run lock) still
 * run. Output still queued (stdout / stderr on a pipe are asynchronous on macOS) is flushed first.
 */
async function exitAfterRun(): Promise<never> {
  for (const stream of [process.stdout, process.stderr]) await new Promise<void>((resolve) => stream.write('', () => resolve()));
  process.exit();
}
