/**
 * Export of a model as a Hugging Face LLaMA folder that transformers loads with
 * AutoModelForCausalLM / AutoTokenizer:
 *
 *   config.json  model.safetensors  tokenizer.json  tokenizer_config.json  generation_config.json
 *
 * A model that came from a Hugging Face folder (exported directly, or continued with
 * `--init-from`, whose run keeps the source's metadata) is written with that metadata unchanged
 * (BOS/EOS ids, max_position_embeddings, tokenizer.json, tokenizer_config.json, …);
 * only what the model truly changed (a grown vocabulary, the weight dtype) is updated. A model
 * trained from scratch gets generated metadata whose BOS/EOS agree with `relora generate`.
 *
 * The folder is written under a temporary name and renamed into place, each file fsynced first,
 * so OUT_DIR is either absent, the previous export, or complete. Temporary folders that a killed
 * export left next to it are removed by the next export into the same parent folder.
 */
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Tokenizer } from '../data/tokenizer.ts';
import { kvHeadsOf, type LlamaConfig } from '../nn/config.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { atomicWriteFile, writeFailure } from './atomic.ts';
import { parseHFConfig, toHFConfig, type HFDtype, type LlamaArchitecture } from './hf-config.ts';
import type { HfMetadata } from './hf-metadata.ts';
import { isProcessAlive } from '../data/process-alive.ts';
import { writeSafetensors, type TensorToWrite, type WritableDtype } from './safetensors.ts';

export interface ExportOptions {
  /** Weight dtype in the file; default float32. */
  dtype?: HFDtype;
  tokenizer?: Tokenizer | null;
  /**
   * Metadata of the Hugging Face model this one is or continues (readHfMetadata of the folder,
   * or of a run's RUN/hf_source/): written over unchanged except where the model differs.
   */
  metadata?: HfMetadata | null;
  /**
   * For a model without metadata: the ids that end a sequence and the tokens put before a
   * prompt, as `relora generate` uses them (default: the tokenizer's EOS, no prefix).
   */
  eosIds?: number[];
  promptPrefix?: number[];
  /** A tokenizer_config.json to write as is, in place of the source's or the generated one. */
  tokenizerConfig?: Record<string, unknown> | null;
  /** Replace OUT_DIR when it exists and is not empty. */
  overwrite?: boolean;
  /** Told what was cleaned up after earlier exports that were killed (see removeStaleExports). */
  log?: (msg: string) => void;
}

const SAFETENSORS_DTYPE: Record<HFDtype, WritableDtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** Metadata files that describe the tokenizer: written only with a tokenizer.json. */
const TOKENIZER_METADATA = new Set(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'chat_template.json', 'chat_template.jinja']);

function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

/** The text of token `id` in a tokenizer.json (added tokens first, then the model's vocabulary). */
export function tokenText(tokenizerJson: object, id: number): string | null {
  const j = tokenizerJson as { added_tokens?: { id: number; content: string }[]; model?: { vocab?: unknown } };
  for (const t of j.added_tokens ?? []) if (t.id === id) return t.content;
  const vocab = j.model?.vocab;
  if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [text, v] of Object.entries(vocab as Record<string, number>)) if (v === id) return text;
  }
  return null;
}

/** BOS, EOS and whether a prompt starts with BOS, as generated metadata states them. */
export interface SpecialTokens {
  bos: number | null;
  eos: number | number[] | null;
  addBos: boolean;
}

/**
 * The special tokens of a model without metadata, from what `relora generate` uses: it ends a
 * sequence at any of `eosIds` and puts `promptPrefix` before a prompt. Without a BOS token (our
 * tokenizers have none) a document starts after EOS, as generate starts an empty prompt, so
 * BOS is the EOS, GPT-2 style.
 */
export function specialTokensFor(eosIds: readonly number[], promptPrefix: readonly number[]): SpecialTokens {
  if (promptPrefix.length > 1) {
    throw new Error(`export: prompts start with ${promptPrefix.length} special tokens (${promptPrefix.join(', ')}); tokenizer_config.json can only state one (add_bos_token)`);
  }
  const eos = eosIds.length === 0 ? null : eosIds.length === 1 ? eosIds[0] : [...eosIds];
  return { bos: promptPrefix.length === 1 ? promptPrefix[0] : (eosIds[0] ?? null), eos, addBos: promptPrefix.length === 1 };
}

/** tokenizer_config.json for one of our tokenizer.json files (which add no special tokens by themselves). */
export function defaultTokenizerConfig(tokenizer: Tokenizer, modelMaxLength: number, special: SpecialTokens): Record<string, unknown> {
  const text = (id: number | null): string | null => (id === null ? null : tokenText(tokenizer.toJSON(), id));
  const eos = Array.isArray(special.eos) ? special.eos[0] : special.eos;
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: modelMaxLength,
    bos_token: text(special.bos),
    eos_token: text(eos),
    add_bos_token: special.addBos,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
  };
}

function architectureOf(c: LlamaConfig, dtype: HFDtype, special: SpecialTokens): LlamaArchitecture {
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numAttentionHeads: c.numHeads,
    numKeyValueHeads: kvHeadsOf(c),
    numHiddenLayers: c.numLayers,
    maxPositionEmbeddings: c.maxSeqLen,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    tieWordEmbeddings: c.tieWordEmbeddings ?? false,
    bosTokenId: special.bos,
    eosTokenId: special.eos,
    padTokenId: null,
    dtype,
  };
}

/**
 * config.json of a model that came from a Hugging Face folder: the source's config.json with
 * every field kept, except those the model truly changed. The model's rotary tables may be
 * shorter than the source's context (a run trains at its sequence length), which does not
 * change max_position_embeddings; the weight dtype is the one written.
 */
export function configFromMetadata(meta: HfMetadata, c: LlamaConfig, dtype: HFDtype): Record<string, unknown> {
  const src = parseHFConfig(meta.config, join(meta.dir, 'config.json'));
  const out: Record<string, unknown> = { ...meta.config };
  const changes: [string, number | boolean, number | boolean][] = [
    ['vocab_size', src.vocab_size, c.vocabSize],
    ['hidden_size', src.hidden_size, c.hiddenSize],
    ['intermediate_size', src.intermediate_size, c.intermediateSize],
    ['num_hidden_layers', src.num_hidden_layers, c.numLayers],
    ['num_attention_heads', src.num_attention_heads, c.numHeads],
    ['num_key_value_heads', src.num_key_value_heads, kvHeadsOf(c)],
    ['tie_word_embeddings', src.tie_word_embeddings, c.tieWordEmbeddings ?? false],
    ['rms_norm_eps', src.rms_norm_eps, c.rmsNormEps],
  ];
  for (const [field, was, now] of changes) if (was !== now) out[field] = now;
  if (out.head_dim !== undefined && out.head_dim !== null) out.head_dim = c.hiddenSize / c.numHeads;
  if (src.rope_theta !== c.ropeTheta) {
    out.rope_theta = c.ropeTheta;
    const params = out.rope_parameters;
    if (typeof params === 'object' && params !== null) out.rope_parameters = { ...params, rope_theta: c.ropeTheta };
  }
  if (c.maxSeqLen > src.max_position_embeddings) out.max_position_embeddings = c.maxSeqLen;
  // transformers 4.x names the dtype "torch_dtype", 5.x "dtype": update whichever the source has.
  const dtypeFields = ['torch_dtype', 'dtype'].filter((f) => f in out);
  for (const f of dtypeFields.length ? dtypeFields : ['torch_dtype']) out[f] = dtype;
  parseHFConfig(out, 'config to write');
  return out;
}

/**
 * Every file of the export but the weights (and, without metadata, tokenizer.json): name → content.
 */
function metadataFiles(c: LlamaConfig, dtype: HFDtype, opts: ExportOptions): Map<string, string | Uint8Array> {
  const files = new Map<string, string | Uint8Array>();
  const tokenizer = opts.tokenizer ?? null;
  const meta = opts.metadata;
  if (meta) {
    const config = configFromMetadata(meta, c, dtype);
    files.set('config.json', json(config));
    files.set('generation_config.json', meta.files.get('generation_config.json') ??
      json({ _from_model_config: true, bos_token_id: config.bos_token_id ?? null, eos_token_id: config.eos_token_id ?? null }));
    if (tokenizer) for (const [name, bytes] of meta.files) if (TOKENIZER_METADATA.has(name)) files.set(name, bytes);
    return files;
  }
  const special = specialTokensFor(opts.eosIds ?? (tokenizer ? [tokenizer.eosId] : []), opts.promptPrefix ?? []);
  files.set('config.json', json(toHFConfig(architectureOf(c, dtype, special))));
  files.set('generation_config.json', json({ _from_model_config: true, bos_token_id: special.bos, eos_token_id: special.eos }));
  if (tokenizer) files.set('tokenizer_config.json', json(defaultTokenizerConfig(tokenizer, c.maxSeqLen, special)));
  return files;
}

/** The weights of a plain (LoRA-merged) model under Hugging Face names, non-finite values refused. */
function weightsToWrite(model: LlamaForCausalLM, dtype: WritableDtype): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, t] of model.namedParameters()) {
    if (/\.lora_[AB]\./.test(name)) {
      throw new Error(`export: parameter ${name} is a LoRA factor; merge the LoRA layers into their weights before export`);
    }
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) throw new Error(`export: parameter ${name} holds a non-finite value (${d[i]}) at index ${i}`);
    }
    out[name] = { dtype, shape: [...t.shape], data: d };
  }
  return out;
}

function isEmptyDir(p: string): boolean {
  return statSync(p).isDirectory() && readdirSync(p).length === 0;
}

/** `.OUT.tmp-PID` (being written) and `.OUT.old-PID` (the previous export, moved aside). */
const LEFTOVER = /^\.(.+)\.(tmp|old)-(\d+)$/;
/** What an export folder, complete or not, may hold (atomic writes add `NAME.tmp-PID-N`). */
const EXPORT_FILE = /^(config\.json|model\.safetensors|tokenizer\.json|generation_config\.json|tokenizer_config\.json|special_tokens_map\.json|added_tokens\.json|chat_template\.json|chat_template\.jinja)(\.tmp-\d+-\d+)?$/;

/**
 * Cleans up after exports into `parent` that were killed before they finished: their temporary
 * folders are removed, and a previous export one of them had moved aside (killed between its
 * two renames) is put back when nothing took its place. Only folders of processes no longer
 * running, holding nothing but export files, are touched. Returns what was done, for messages.
 */
export function removeStaleExports(parent: string): string[] {
  if (!existsSync(parent)) return [];
  const done: string[] = [];
  for (const name of readdirSync(parent)) {
    const m = LEFTOVER.exec(name);
    if (!m) continue;
    const pid = Number(m[3]);
    if (pid === process.pid || isProcessAlive(pid)) continue;
    const path = join(parent, name);
    if (!statSync(path).isDirectory() || !readdirSync(path).every((f) => EXPORT_FILE.test(f))) continue;
    const original = join(parent, m[1]);
    if (m[2] === 'old' && !existsSync(original)) {
      renameSync(path, original);
      done.push(`restored ${original} (an export killed while replacing it had moved it to ${path})`);
    } else {
      rmSync(path, { recursive: true, force: true });
      done.push(`removed ${path} (left by export process ${pid}, which is no longer running)`);
    }
  }
  return done;
}

function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Writes `model` (no LoRA layers) and its tokenizer as a Hugging Face folder. Returns the files written. */
export async function exportHFModel(model: LlamaForCausalLM, outDir: string, opts: ExportOptions = {}): Promise<string[]> {
  const dtype = opts.dtype ?? 'float32';
  if (!(dtype in SAFETENSORS_DTYPE)) throw new Error(`export: unknown dtype "${dtype}"; expected float32, float16 or bfloat16`);
  const target = resolve(outDir);
  const parent = dirname(target);
  for (const note of removeStaleExports(parent)) opts.log?.(note);
  if (existsSync(target) && !opts.overwrite && !isEmptyDir(target)) {
    throw new Error(`export: ${target} already exists and is not empty; choose another folder or allow overwriting`);
  }
  const tensors = weightsToWrite(model, SAFETENSORS_DTYPE[dtype]);
  const files = metadataFiles(model.config, dtype, opts);
  if (opts.tokenizer) {
    // The source's own tokenizer.json when the metadata has it (the same tokenizer, as written).
    if (!files.has('tokenizer.json')) files.set('tokenizer.json', JSON.stringify(opts.tokenizer.toJSON()));
    if (opts.tokenizerConfig) files.set('tokenizer_config.json', json(opts.tokenizerConfig));
  }
  const weightBytes = Object.values(tensors).reduce((n, t) => n + t.data.length * (dtype === 'float32' ? 4 : 2), 0);

  const tmp = join(parent, `.${basename(target)}.tmp-${process.pid}`);
  try {
    await mkdir(parent, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    await writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
    for (const [name, content] of files) await atomicWriteFile(join(tmp, name), content);
    if (existsSync(target)) {
      // An empty folder (or, with overwrite, an old export) makes way only once the new one is complete.
      const old = join(parent, `.${basename(target)}.old-${process.pid}`);
      renameSync(target, old);
      renameSync(tmp, target);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, target);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const err = writeFailure(tmp, e) as NodeJS.ErrnoException;
    if (err.code === undefined) throw err;
    throw Object.assign(new Error(
      `export to ${target} failed: ${err.message}. The export needs about ${formatMiB(weightBytes)} of weights; ` +
      `${existsSync(target) ? `${target} is unchanged` : 'nothing was left behind'}`,
      { cause: e },
    ), { code: err.code });
  }
  return ['config.json', 'model.safetensors', ...[...files.keys()].filter((f) => f !== 'config.json')].map((f) => join(target, f));
}
