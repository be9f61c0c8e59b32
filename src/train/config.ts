/**
 * The training configuration: one schema (zod) for the config file and the flags. Keys are
 * snake_case in files; every key has a kebab-case flag (`warm_start_steps` ↔ `--warm-start-steps`).
 * Every problem is reported together, before any work starts.
 */
import { z } from 'zod';
import { DEFAULT_SHARD_TOKENS } from '../data/sampler.ts';
import { NAMED_CONFIGS, namedConfig, validateConfig, type LlamaConfig } from '../nn/config.ts';
import { PROJECTIONS } from '../nn/llama.ts';
import { SCHEDULER_KINDS, validateScheduleConfig } from '../optim/schedule.ts';
import { parseResetKind } from '../relora/prune.ts';
import { TRAINING_MODES, type WrapOptions } from '../relora/wrap.ts';

const customModel = z.object({
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_heads: z.number().int().positive(),
  num_layers: z.number().int().positive(),
}).strict();

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

/** The model trained when the config names none (and does not continue one with init_from). */
export const DEFAULT_MODEL = { hidden_size: 128, intermediate_size: 352, num_heads: 4, num_layers: 4 } as const;

/**
 * Every key, with the description `relora train --help` shows. Defaults are the reference's
 * (Lialin et al., ReLoRA) scaled to a small CPU run.
 */
export const TrainConfigSchema = z.object({
  model: z.union([z.string(), customModel]).optional()
    .describe('a named model (llama_9m … llama_1b) or a JSON shape {hidden_size, intermediate_size, num_heads, num_layers}; default a 4-layer 128-wide model; not with init_from'),
  vocab_size: positiveInt.optional().describe("embedding rows; default the tokenizer's vocabulary size (never below it)"),
  mode: z.enum(TRAINING_MODES as unknown as [string, ...string[]]).default('relora').describe('full, lora or relora; lora and relora start with a full-rank warm start of warm_start_steps (give 0 for plain LoRA)'),
  rank: positiveInt.default(32).describe('LoRA rank r'),
  alpha: z.number().positive().default(32).describe('LoRA scaling numerator (scale alpha / r)'),
  dropout: z.number().min(0).lt(1).default(0.1).describe('dropout on the LoRA branch input'),
  frozen_bf16: z.boolean().default(false).describe("lora/relora: form the frozen weights' products in bfloat16 (fp32 accumulation; W stays fp32)"),
  target_modules: z.array(z.enum(PROJECTIONS)).min(1).default([...PROJECTIONS]).describe('projections wrapped with LoRA (comma-separated)'),
  lr: z.number().positive().default(4e-3).describe('peak learning rate of the LoRA/ReLoRA phase (of the whole run in full mode)'),
  warm_start_lr: z.number().positive().optional().describe('peak learning rate of the full-rank warm start; default lr / 2'),
  scheduler: z.enum(SCHEDULER_KINDS as unknown as [string, ...string[]]).optional().describe('learning-rate schedule; default cosine_restarts for relora, cosine otherwise'),
  warmup_steps: nonNegInt.default(30).describe('linear warm-up updates at the start of each phase'),
  restart_warmup_steps: nonNegInt.default(20).describe('relora: warm-up updates after each merge'),
  min_lr_ratio: z.number().gt(0).max(1).default(0.1).describe('lowest learning rate as a fraction of the peak'),
  warm_start_steps: nonNegInt.default(200).describe('full-rank updates before the LoRA/ReLoRA phase (also in mode lora: 0 makes it plain LoRA)'),
  warm_start_schedule: z.enum(['run', 'phase']).default('run')
    .describe('warm-start learning rate: run (the first part of a cosine over the whole run, near its peak at the switch, as in the paper) or phase (a complete cosine of its own, annealed at the switch)'),
  cycle_length: positiveInt.default(200).describe('relora: updates between merges'),
  optimizer_reset: z.string().default('shared').describe("relora: optimizer state of the LoRA factors at a merge: shared (random pruning of 99.9% with one mask for both moments), reference (alias reset: a mask per moment, as the reference code; makes huge steps, see docs/method.md), zero, random:<fraction>, shared:<fraction> or magnitude:<fraction>"),
  weight_decay: z.number().min(0).default(0).describe('AdamW weight decay'),
  clip_norm: z.number().min(0).default(1).describe('global gradient-norm clip (0: none)'),
  seq_len: z.number().int().min(2).default(128).describe('tokens per sequence (at least 2: the loss predicts each token from the ones before it)'),
  micro_batch: positiveInt.default(16).describe('sequences per forward/backward pass'),
  batch_size: positiveInt.optional().describe('sequences per update (a multiple of micro_batch: gradient accumulation); default micro_batch'),
  steps: positiveInt.optional().describe('number of updates; default 1000'),
  tokens: positiveInt.optional().describe('or a token budget, rounded down to whole updates'),
  eval_every: positiveInt.default(200).describe('updates between evaluations'),
  eval_tokens: positiveInt.default(65536).describe('held-out tokens per evaluation (whole sequences; all of them if fewer)'),
  save_every: positiveInt.default(200).describe('updates between checkpoints'),
  keep_checkpoints: positiveInt.default(2).describe('checkpoints kept (the newest)'),
  seed: nonNegInt.max(4294967295).default(0).describe('seed of every random stream (weights, LoRA, data order)'),
  backend: z.enum(['native', 'js', 'webgpu', 'auto']).default('auto').describe('compute backend: native, js, webgpu or auto (auto never picks webgpu)'),
  threads: positiveInt.optional().describe('compute threads; default all cores'),
  shard_optimizer: z.boolean().default(false).describe('data parallel (mpirun): each process keeps the AdamW moments of about 1/N of the trainable tensors (ZeRO stage 1); results and checkpoints are those of an unsharded run'),
  precision: z.enum(['fp32', 'bf16']).default('fp32').describe('fp32, or bf16 mixed precision (every product in bfloat16 with fp32 accumulation, as PyTorch autocast; weights, optimizer and checkpoints stay fp32)'),
  data: z.array(z.string().min(1)).optional().describe('training data: files, folders or globs (.txt, .jsonl, .parquet), comma-separated; default the shipped Brown corpus'),
  validation: z.array(z.string().min(1)).optional().describe('validation data; default val_fraction of the training documents'),
  val_fraction: z.number().gt(0).lt(1).default(0.05).describe('share of the training documents held out when no validation data is given'),
  text_field: z.string().min(1).default('text').describe('JSONL field / Parquet column holding the text'),
  txt_mode: z.enum(['file', 'blank-line']).default('file').describe('a .txt file is one document (file) or one per blank-line-separated block'),
  data_shard_tokens: positiveInt.default(DEFAULT_SHARD_TOKENS)
    .describe('tokens per shard of the training data: the first epoch takes the shards in corpus order, each shuffled, so training starts once the first shard is tokenised (a corpus of one shard is shuffled whole)'),
  tokenizer: z.string().min(1).optional().describe('a tokenizer.json (or a folder holding one); default a byte-level BPE trained on the data'),
  tokenizer_vocab_size: z.number().int().min(300).max(1_000_000).default(8000).describe('vocabulary of the trained tokenizer'),
  init_from: z.string().min(1).optional().describe('a Hugging Face LLaMA folder to continue pre-training (its weights, shape and tokenizer)'),
  rank_sample: z.union([z.enum(['default', 'all', 'none']), z.array(z.string())]).default('default')
    .describe('rank of the accumulated update at each merge: default (a few matrices), all, none, or module names'),
  out: z.string().min(1).default('runs/relora').describe('run folder; default runs/<mode>-<time>'),
  max_skipped_updates: nonNegInt.default(10).describe('updates skipped for a non-finite loss or gradient before the run stops'),
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

type Issue = z.core.$ZodIssue;

/** The value at `path` in `raw`, for "got …" in messages. */
function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v = raw;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function expectedOf(i: Issue): string {
  if (i.code === 'invalid_type') return i.expected;
  if (i.code === 'invalid_value') return `one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return i.message;
}

/**
 * One line per problem, naming the field and what was expected. A union ("a model name or a
 * custom shape") is explained by the alternative the value was meant as: the branches that failed
 * only because the value had another type are left out.
 */
function describeIssue(issue: Issue, prefix: PropertyKey[], raw: unknown): string[] {
  const path = [...prefix, ...issue.path];
  const name = path.join('.') || '(root)';
  const value = valueAt(raw, path);
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    // A branch that rejects the value as a whole (a list given where a name is expected) is
    // not the one the user meant.
    const wrongKind = (b: Issue[]) => b.length === 1 && b[0].path.length === 0 && (b[0].code === 'invalid_type' || typeof value === 'object');
    const meant = issue.errors.filter((b) => !wrongKind(b));
    if (meant.length > 0) return meant.flatMap((b) => b.flatMap((i) => describeIssue(i, path, raw)));
    return [`${name}: expected ${issue.errors.map((b) => expectedOf(b[0])).join(' or ')}, got ${show(value)}`];
  }
  if (issue.code === 'invalid_type') return [value === undefined ? `${name}: missing; expected ${issue.expected}` : `${name}: expected ${issue.expected}, got ${show(value)}`];
  if (issue.code === 'unrecognized_keys') return [`${name}: ${issue.message}`];
  return [`${name}: ${issue.message} (got ${show(value)})`];
}

/** Validate and resolve: all problems (schema and combinations) in one ConfigError. */
export function resolveConfig(raw: unknown, source = 'config'): TrainConfig {
  const isObject = !!raw && typeof raw === 'object' && !Array.isArray(raw);
  const problems: string[] = [];
  if (isObject) {
    for (const key of Object.keys(raw)) {
      if (!(CONFIG_KEYS as string[]).includes(key)) {
        const s = suggestKey(key);
        problems.push(`unknown key "${key}"${s ? ` (did you mean "${s}"?)` : ''}`);
      }
    }
  }
  const known = isObject ? Object.fromEntries(Object.entries(raw).filter(([k]) => (CONFIG_KEYS as string[]).includes(k))) : raw;
  const parsed = TrainConfigSchema.safeParse(known);
  if (!parsed.success) {
    problems.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, [], known)));
    throw new ConfigError(problems, source);
  }
  const c = parsed.data;
  const d = derivedValues(c);
  problems.push(...combinationProblems(c, d, isObject ? Object.keys(raw) : []));
  if (problems.length) throw new ConfigError(problems, source);
  const { model, ...rest } = c;
  return {
    ...rest,
    // A run that continues an imported model has no model key: its folder defines the shape.
    ...(c.init_from ? {} : { model: model ?? { ...DEFAULT_MODEL } }),
    scheduler: d.scheduler,
    warm_start_steps: d.warmStart,
    warm_start_lr: c.warm_start_lr ?? c.lr / 2,
    batch_size: d.batchSize,
    steps: d.steps,
    grad_accum: d.batchSize / c.micro_batch,
  };
}

interface Derived {
  batchSize: number;
  steps: number;
  scheduler: TrainConfig['scheduler'];
  /** Full-rank updates before the low-rank phase (0 in full mode). */
  warmStart: number;
}

function derivedValues(c: ParsedConfig): Derived {
  const batchSize = c.batch_size ?? c.micro_batch;
  const steps = c.steps ?? (c.tokens !== undefined ? Math.floor(c.tokens / (batchSize * c.seq_len)) : 1000);
  const scheduler = (c.scheduler ?? (c.mode === 'relora' ? 'cosine_restarts' : 'cosine')) as TrainConfig['scheduler'];
  return { batchSize, steps, scheduler, warmStart: c.mode === 'full' ? 0 : c.warm_start_steps };
}

/** Keys that are valid alone but not together; `given` are the keys the user wrote. */
function combinationProblems(c: ParsedConfig, d: Derived, given: string[]): string[] {
  const problems: string[] = [];
  const { batchSize, steps, scheduler, warmStart } = d;
  if (typeof c.model === 'string' && !(c.model in NAMED_CONFIGS)) {
    problems.push(`model: unknown model "${c.model}"; known models: ${Object.keys(NAMED_CONFIGS).join(', ')} (or a custom {hidden_size, intermediate_size, num_heads, num_layers})`);
  }
  try {
    parseResetKind(c.optimizer_reset);
  } catch (e) {
    problems.push(`optimizer_reset: ${(e as Error).message}`);
  }
  if (batchSize % c.micro_batch !== 0) problems.push(`batch_size ${batchSize} must be a multiple of micro_batch ${c.micro_batch}`);
  if (c.steps !== undefined && c.tokens !== undefined) problems.push('give steps or tokens, not both');
  if (steps < 1) problems.push(`tokens ${c.tokens} is less than one update (${batchSize * c.seq_len} tokens)`);
  if (c.mode === 'full' && c.warm_start_steps > 0 && given.includes('warm_start_steps')) {
    problems.push('warm_start_steps: only meaningful with mode lora or relora (a full-rank run is all warm start)');
  }
  if (c.mode === 'full' && given.includes('warm_start_schedule')) {
    problems.push('warm_start_schedule: only meaningful with mode lora or relora (a full-rank run has no warm start)');
  }
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
  if (c.init_from) {
    for (const k of ['model', 'tokenizer', 'vocab_size'] as const) {
      if (given.includes(k)) problems.push(`${k}: not allowed with init_from (the model folder ${c.init_from} defines the model and its tokenizer)`);
    }
  }
  if (c.eval_tokens < c.seq_len) problems.push(`eval_tokens ${c.eval_tokens} is less than one sequence (seq_len ${c.seq_len})`);
  return problems;
}

/**
 * The model shape a config describes (a named or custom model), with `vocabSize` rows unless
 * the config sets vocab_size. A run that continues an imported model (init_from) has no shape in
 * its config: its folder's config.json (and then RUN/model.json) holds it.
 */
export function modelConfigFor(cfg: TrainConfig, vocabSize: number): LlamaConfig {
  if (cfg.model === undefined) throw new Error(`the config has no model shape${cfg.init_from ? ` (the model comes from init_from ${cfg.init_from})` : ''}`);
  const base = { vocabSize: cfg.vocab_size ?? vocabSize, maxSeqLen: cfg.seq_len };
  if (typeof cfg.model === 'string') return namedConfig(cfg.model, base);
  return validateConfig({
    ...base,
    hiddenSize: cfg.model.hidden_size,
    intermediateSize: cfg.model.intermediate_size,
    numHeads: cfg.model.num_heads,
    numLayers: cfg.model.num_layers,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
  });
}

/** The LoRA layers a config asks for (used by the lora and relora phases). */
export function loraOptions(cfg: TrainConfig): WrapOptions {
  return { rank: cfg.rank, alpha: cfg.alpha, dropout: cfg.dropout, targetModules: cfg.target_modules, frozenBf16: cfg.frozen_bf16 };
}
