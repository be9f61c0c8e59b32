/**
 * The training configuration: one schema (zod) for the config file and the flags. Keys are
 * snake_case in files; every key has a kebab-case flag (`warm_start_steps` ↔ `--warm-start-steps`).
 * Every problem is reported together, before any work starts.
 */
import { z } from 'zod';
import { NAMED_CONFIGS } from '../nn/config.ts';
import { PROJECTIONS } from '../nn/llama.ts';
import { SCHEDULER_KINDS, validateScheduleConfig } from '../optim/schedule.ts';
import { parseResetKind } from '../relora/prune.ts';
import { TRAINING_MODES } from '../relora/wrap.ts';

const customModel = z.object({
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_heads: z.number().int().positive(),
  num_layers: z.number().int().positive(),
}).strict();

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const TrainConfigSchema = z.object({
  /** A named config (llama_9m … llama_1b) or a custom shape. */
  model: z.union([z.string(), customModel]).default({ hidden_size: 128, intermediate_size: 352, num_heads: 4, num_layers: 4 }),
  /** Defaults to the tokenizer's vocabulary size. */
  vocab_size: positiveInt.optional(),
  mode: z.enum(TRAINING_MODES as unknown as [string, ...string[]]).default('relora'),
  rank: positiveInt.default(32),
  alpha: z.number().positive().default(32),
  dropout: z.number().min(0).lt(1).default(0.1),
  /** lora/relora: form the frozen weights' products in bfloat16 (fp32 accumulation; W stays fp32). */
  frozen_bf16: z.boolean().default(false),
  target_modules: z.array(z.enum(PROJECTIONS)).min(1).default([...PROJECTIONS]),
  /** Peak learning rate of the LoRA / ReLoRA phase (or of the whole run in full mode). */
  lr: z.number().positive().default(4e-3),
  /** Peak learning rate of the full-rank warm start; default lr / 2 (the reference uses about half). */
  warm_start_lr: z.number().positive().optional(),
  scheduler: z.enum(SCHEDULER_KINDS as unknown as [string, ...string[]]).optional(),
  warmup_steps: nonNegInt.default(30),
  restart_warmup_steps: nonNegInt.default(20),
  min_lr_ratio: z.number().gt(0).max(1).default(0.1),
  /** Full-rank updates before the ReLoRA (or LoRA) phase. */
  warm_start_steps: nonNegInt.default(200),
  cycle_length: positiveInt.default(200),
  optimizer_reset: z.string().default('reset'),
  weight_decay: z.number().min(0).default(0),
  clip_norm: z.number().min(0).default(1),
  seq_len: positiveInt.default(128),
  micro_batch: positiveInt.default(16),
  /** Sequences per update; gradient accumulation = batch_size / micro_batch. Default micro_batch. */
  batch_size: positiveInt.optional(),
  /** Number of updates. */
  steps: positiveInt.optional(),
  /** Or a token budget (rounded down to whole updates). */
  tokens: positiveInt.optional(),
  eval_every: positiveInt.default(200),
  /** Held-out tokens evaluated each time (whole sequences; all of them if fewer). */
  eval_tokens: positiveInt.default(65536),
  save_every: positiveInt.default(200),
  keep_checkpoints: positiveInt.default(2),
  seed: nonNegInt.max(4294967295).default(0),
  backend: z.enum(['native', 'js', 'auto']).default('auto'),
  threads: positiveInt.optional(),
  /** Training data: files, folders or globs (.txt, .jsonl, .parquet). Default: the shipped Brown corpus. */
  data: z.array(z.string().min(1)).optional(),
  /** Validation data; if absent, val_fraction of the training documents is held out. */
  validation: z.array(z.string().min(1)).optional(),
  val_fraction: z.number().gt(0).lt(1).default(0.05),
  text_field: z.string().min(1).default('text'),
  txt_mode: z.enum(['file', 'blank-line']).default('file'),
  /** An existing tokenizer.json, or absent to train a byte-level BPE of tokenizer_vocab_size. */
  tokenizer: z.string().min(1).optional(),
  tokenizer_vocab_size: z.number().int().min(300).max(1_000_000).default(8000),
  /** A Hugging Face LLaMA folder to continue pre-training (its weights, shape and tokenizer). */
  init_from: z.string().min(1).optional(),
  /** Singular-value tracking: "default" (a few matrices), "all", "none", or module names. */
  rank_sample: z.union([z.enum(['default', 'all', 'none']), z.array(z.string())]).default('default'),
  out: z.string().min(1).default('runs/relora'),
  /** Updates skipped for a non-finite loss or gradient before the run stops (see src/train/trainer.ts). */
  max_skipped_updates: nonNegInt.default(10),
}).strict();

export type TrainConfigInput = z.input<typeof TrainConfigSchema>;
export type ParsedConfig = z.output<typeof TrainConfigSchema>;

/** The resolved config: every default filled in and every derived value computed. */
export interface TrainConfig extends ParsedConfig {
  scheduler: (typeof SCHEDULER_KINDS)[number];
  warm_start_lr: number;
  batch_size: number;
  steps: number;
  /** Derived: micro-batches per update. */
  grad_accum: number;
}

export const CONFIG_KEYS = Object.keys(TrainConfigSchema.shape) as (keyof ParsedConfig)[];

/** Levenshtein distance, for "did you mean" on unknown keys. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

export function suggestKey(key: string): string | null {
  const norm = key.replace(/-/g, '_').toLowerCase();
  let best: string | null = null, bestD = Infinity;
  for (const k of CONFIG_KEYS) {
    const dist = editDistance(norm, k);
    if (dist < bestD) { bestD = dist; best = k; }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[], source: string) {
    super(`invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Validate and resolve: all problems (schema and combinations) in one ConfigError. */
export function resolveConfig(raw: unknown, source = 'config'): TrainConfig {
  const problems: string[] = [];
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const key of Object.keys(raw)) {
      if (!(CONFIG_KEYS as string[]).includes(key)) {
        const s = suggestKey(key);
        problems.push(`unknown key "${key}"${s ? ` (did you mean "${s}"?)` : ''}`);
      }
    }
  }
  const known = raw && typeof raw === 'object' && !Array.isArray(raw)
    ? Object.fromEntries(Object.entries(raw).filter(([k]) => (CONFIG_KEYS as string[]).includes(k)))
    : raw;
  const parsed = TrainConfigSchema.safeParse(known);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.join('.') || '(root)';
      problems.push(`${path}: ${issue.message}`);
    }
    throw new ConfigError(problems, source);
  }
  const c = parsed.data;
  if (typeof c.model === 'string' && !(c.model in NAMED_CONFIGS)) {
    problems.push(`model: unknown model "${c.model}"; known models: ${Object.keys(NAMED_CONFIGS).join(', ')} (or a custom {hidden_size, intermediate_size, num_heads, num_layers})`);
  }
  try {
    parseResetKind(c.optimizer_reset);
  } catch (e) {
    problems.push(`optimizer_reset: ${(e as Error).message}`);
  }
  const batchSize = c.batch_size ?? c.micro_batch;
  if (batchSize % c.micro_batch !== 0) problems.push(`batch_size ${batchSize} must be a multiple of micro_batch ${c.micro_batch}`);
  if (c.steps !== undefined && c.tokens !== undefined) problems.push('give steps or tokens, not both');
  const tokensPerUpdate = batchSize * c.seq_len;
  const steps = c.steps ?? (c.tokens !== undefined ? Math.floor(c.tokens / tokensPerUpdate) : 1000);
  if (steps < 1) problems.push(`tokens ${c.tokens} is less than one update (${tokensPerUpdate} tokens)`);
  const scheduler = (c.scheduler ?? (c.mode === 'relora' ? 'cosine_restarts' : 'cosine')) as TrainConfig['scheduler'];
  if (c.mode === 'full' && c.warm_start_steps > 0 && raw && typeof raw === 'object' && 'warm_start_steps' in raw) {
    problems.push('warm_start_steps: only meaningful with mode lora or relora (a full-rank run is all warm start)');
  }
  const warmStart = c.mode === 'full' ? 0 : c.warm_start_steps;
  if (warmStart >= steps) problems.push(`warm_start_steps ${warmStart} must be less than steps ${steps}`);
  if (c.mode === 'relora' && scheduler !== 'cosine_restarts') {
    problems.push(`scheduler: mode relora needs cosine_restarts (the jagged schedule restarts the learning rate at each merge), got ${scheduler}`);
  }
  const phaseSteps = steps - warmStart;
  if (phaseSteps > 0) {
    try {
      validateScheduleConfig({
        scheduler, steps: phaseSteps, warmupSteps: Math.min(c.warmup_steps, phaseSteps),
        restartWarmupSteps: c.restart_warmup_steps, cycleLength: c.cycle_length, minLrRatio: c.min_lr_ratio,
      });
    } catch (e) {
      problems.push(`${(e as Error).message} (the ${c.mode} phase has ${phaseSteps} updates = steps ${steps} − warm_start_steps ${warmStart})`);
    }
  }
  if (c.mode === 'relora' && phaseSteps > 0 && phaseSteps <= c.cycle_length) {
    problems.push(`cycle_length ${c.cycle_length}: the relora phase has only ${phaseSteps} updates, so no restart would happen`);
  }
  if (c.init_from && raw && typeof raw === 'object') {
    for (const k of ['model', 'tokenizer', 'vocab_size'] as const) {
      if (k in raw) problems.push(`${k}: not allowed with init_from (the model folder ${c.init_from} defines the model and its tokenizer)`);
    }
  }
  if (c.eval_tokens < c.seq_len) problems.push(`eval_tokens ${c.eval_tokens} is less than one sequence (seq_len ${c.seq_len})`);
  if (problems.length) throw new ConfigError(problems, source);
  return {
    ...c,
    scheduler,
    warm_start_steps: warmStart,
    warm_start_lr: c.warm_start_lr ?? c.lr / 2,
    batch_size: batchSize,
    steps,
    grad_accum: batchSize / c.micro_batch,
  };
}
