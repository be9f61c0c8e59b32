/**
 * config.json of a Hugging Face `LlamaForCausalLM` folder: reading one (validated, with
 * transformers' defaults filled in) and writing one that transformers 4.x and 5.x both load.
 *
 * Plain data only, so io does not depend on nn: `LlamaArchitecture` is the camelCase form the
 * rest of the library can map its model config to and from.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile } from './atomic.ts';

export type HFDtype = 'float32' | 'float16' | 'bfloat16';

/** The fields of a LLaMA config.json this library uses, under transformers' names. */
export interface LlamaHFConfig {
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  num_hidden_layers: number;
  rms_norm_eps: number;
  rope_theta: number;
  vocab_size: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  pad_token_id: number | null;
  torch_dtype: HFDtype;
  initializer_range: number;
}

/** A LLaMA model's shape and constants, independent of any file format. */
export interface LlamaArchitecture {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  /** Defaults to numAttentionHeads (no grouped-query attention). */
  numKeyValueHeads?: number;
  numHiddenLayers: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  /** Defaults to 10000. */
  ropeTheta?: number;
  /** Defaults to false (separate lm_head). */
  tieWordEmbeddings?: boolean;
  /** Default 1, as transformers. */
  bosTokenId?: number | null;
  /** Default 2, as transformers. */
  eosTokenId?: number | number[] | null;
  padTokenId?: number | null;
  /** dtype the weights are stored in; default float32. */
  dtype?: HFDtype;
  /** Std of the normal init; default 0.02. */
  initializerRange?: number;
}

const DTYPES: readonly HFDtype[] = ['float32', 'float16', 'bfloat16'];

/**
 * Upper bounds on the size fields of config.json: far above any released LLaMA-family model
 * (Llama 3.1 405B: hidden 16384, intermediate 53248, 128 heads, 126 layers, vocabulary 128256,
 * 131072 positions), so that a mistyped or hostile file is refused by name before anything is
 * allocated, instead of exhausting memory or failing deep inside with "Invalid typed array length".
 */
export const HF_SIZE_LIMITS = {
  hidden_size: 2 ** 16,
  intermediate_size: 2 ** 18,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  num_hidden_layers: 1024,
  vocab_size: 2 ** 22,
  max_position_embeddings: 2 ** 24,
} as const;

/** config.json is a few KB; a file far larger is not one, and is not read into memory. */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

/** The most values one tensor can hold here (the longest typed array Node allocates). */
export const MAX_TENSOR_VALUES = 2 ** 32;

// ---------------------------------------------------------------------------------------------
// Field checks: each names the file and the field

class FieldReader {
  constructor(
    private readonly file: string,
    private readonly raw: Record<string, unknown>,
  ) {}

  fail(field: string, expected: string): Error {
    return new Error(
      `${this.file}: field "${field}" is ${show(this.raw[field])}; expected ${expected}`,
    );
  }

  has(field: string): boolean {
    return this.raw[field] !== undefined;
  }

  get(field: string): unknown {
    return this.raw[field];
  }

  positiveInt(field: string, fallback?: number): number {
    const v = this.raw[field];
    if (v === undefined && fallback !== undefined) return fallback;
    if (v === undefined) throw new Error(`${this.file}: required field "${field}" is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw this.fail(field, 'a positive integer');
    return v;
  }

  /** A positive integer no larger than HF_SIZE_LIMITS[field]. */
  size(field: keyof typeof HF_SIZE_LIMITS, fallback?: number): number {
    const v = this.positiveInt(field, fallback);
    const limit = HF_SIZE_LIMITS[field];
    if (v > limit) throw this.fail(field, `a positive integer up to ${limit.toLocaleString('en-US')} (larger than any LLaMA model; is the file damaged?)`);
    return v;
  }

  positiveNumber(field: string, fallback?: number): number {
    const v = this.raw[field];
    if (v === undefined && fallback !== undefined) return fallback;
    if (v === undefined) throw new Error(`${this.file}: required field "${field}" is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.fail(field, 'a positive number');
    return v;
  }

  boolean(field: string, fallback: boolean): boolean {
    const v = this.raw[field];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw this.fail(field, 'true or false');
    return v;
  }

  /** A token id in [0, vocabSize), or null; `fallback` when absent. */
  tokenId(field: string, fallback: number | null, vocabSize: number): number | null {
    const v = this.raw[field];
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (!isTokenId(v, vocabSize)) throw this.fail(field, `a token id in [0, ${vocabSize}) or null`);
    return v;
  }
}

function isTokenId(v: unknown, vocabSize: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < vocabSize;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/**
 * RoPE base. transformers 4.x writes a top-level `rope_theta` (and `rope_scaling`: null or a
 * scaling dict); 5.x writes `rope_parameters: {rope_type, rope_theta}`. Only plain ("default")
 * RoPE is implemented here, so any scaling scheme is refused rather than silently ignored.
 */
function ropeTheta(r: FieldReader, file: string): number {
  for (const field of ['rope_parameters', 'rope_scaling']) {
    const params = r.get(field);
    if (params === undefined || params === null) continue;
    if (!isRecord(params)) throw r.fail(field, 'an object or null');
    const type = params.rope_type ?? params.type ?? 'default';
    if (type !== 'default') {
      throw new Error(
        `${file}: field "${field}" asks for RoPE type ${show(type)}; only the default (unscaled) RoPE is supported`,
      );
    }
    const theta = params.rope_theta;
    if (theta !== undefined) {
      if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) {
        throw new Error(`${file}: field "${field}.rope_theta" is ${show(theta)}; expected a positive number`);
      }
      return theta;
    }
  }
  return r.positiveNumber('rope_theta', 10000);
}

/**
 * Validates a parsed config.json object. `file` names it in errors. Rejects configs this
 * library cannot reproduce exactly (other activations, biases, scaled RoPE, decoupled head_dim)
 * instead of loading a subtly different model.
 */
export function parseHFConfig(raw: unknown, file: string): LlamaHFConfig {
  if (!isRecord(raw)) throw new Error(`${file}: expected a JSON object, got ${show(raw)}`);
  const r = new FieldReader(file, raw);

  if (raw.model_type !== 'llama') {
    throw new Error(`${file}: field "model_type" is ${show(raw.model_type)}; expected "llama" (a LLaMA model)`);
  }
  if (raw.architectures !== undefined) {
    const arch = raw.architectures;
    if (!Array.isArray(arch) || !arch.includes('LlamaForCausalLM')) {
      throw r.fail('architectures', 'a list including "LlamaForCausalLM"');
    }
  }

  const hidden = r.size('hidden_size');
  const heads = r.size('num_attention_heads');
  const kvHeads = r.size('num_key_value_heads', heads);
  if (hidden % heads !== 0) {
    throw r.fail('num_attention_heads', `a divisor of hidden_size ${hidden}`);
  }
  if (heads % kvHeads !== 0) {
    throw r.fail('num_key_value_heads', `a divisor of num_attention_heads ${heads}`);
  }
  const headDim = r.get('head_dim');
  if (headDim !== undefined && headDim !== null && headDim !== hidden / heads) {
    throw r.fail('head_dim', `hidden_size / num_attention_heads = ${hidden / heads} (other head sizes are not supported)`);
  }
  if ((hidden / heads) % 2 !== 0) {
    throw r.fail('num_attention_heads', `a divisor of hidden_size ${hidden} leaving an even head size for rotary embeddings (${hidden} / ${heads} = ${hidden / heads})`);
  }
  const act = r.get('hidden_act');
  if (act !== undefined && act !== 'silu') throw r.fail('hidden_act', '"silu" (the only activation implemented)');
  for (const bias of ['attention_bias', 'mlp_bias']) {
    if (r.boolean(bias, false)) throw r.fail(bias, 'false (biases are not supported)');
  }

  const vocab = r.size('vocab_size');
  const intermediate = r.size('intermediate_size');
  // Each weight matrix is one array: refuse what no array can hold, naming the fields.
  for (const [a, b, x, y] of [['vocab_size', 'hidden_size', vocab, hidden], ['intermediate_size', 'hidden_size', intermediate, hidden]] as const) {
    if (x * y > MAX_TENSOR_VALUES) {
      throw new Error(`${file}: ${a} × ${b} = ${x} × ${y} = ${(x * y).toLocaleString('en-US')} values in one weight matrix, more than the ${MAX_TENSOR_VALUES.toLocaleString('en-US')} one array can hold`);
    }
  }
  const eos = raw.eos_token_id;
  let eosId: number | number[] | null;
  if (eos === undefined) eosId = 2;
  else if (eos === null) eosId = null;
  else if (isTokenId(eos, vocab)) eosId = eos;
  else if (Array.isArray(eos) && eos.length > 0 && eos.every((e) => isTokenId(e, vocab))) eosId = eos.slice();
  else throw r.fail('eos_token_id', `a token id in [0, ${vocab}), a non-empty list of them, or null`);

  // transformers 5 calls it "dtype"; 4.x "torch_dtype". Some old files write "torch.float32".
  const dtypeField = r.has('torch_dtype') ? 'torch_dtype' : 'dtype';
  let dtype = r.get(dtypeField) ?? 'float32';
  if (typeof dtype === 'string') dtype = dtype.replace(/^torch\./, '');
  if (!DTYPES.includes(dtype as HFDtype)) throw r.fail(dtypeField, DTYPES.map((d) => `"${d}"`).join(', '));

  const pad = raw.pad_token_id;
  if (pad !== undefined && pad !== null && (typeof pad !== 'number' || !Number.isSafeInteger(pad))) {
    throw r.fail('pad_token_id', 'an integer or null');
  }

  return {
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    num_hidden_layers: r.size('num_hidden_layers'),
    rms_norm_eps: r.positiveNumber('rms_norm_eps'),
    rope_theta: ropeTheta(r, file),
    vocab_size: vocab,
    max_position_embeddings: r.size('max_position_embeddings'),
    tie_word_embeddings: r.boolean('tie_word_embeddings', false),
    bos_token_id: r.tokenId('bos_token_id', 1, vocab),
    eos_token_id: eosId,
    pad_token_id: (pad as number | null | undefined) ?? null,
    torch_dtype: dtype as HFDtype,
    initializer_range: r.positiveNumber('initializer_range', 0.02),
  };
}

/** Reads `<dir>/config.json` (or the given .json file) of a Hugging Face LLaMA model. */
export async function readHFConfig(dirOrFile: string): Promise<LlamaHFConfig> {
  let file = dirOrFile;
  let text: string;
  try {
    if ((await stat(dirOrFile)).isDirectory()) file = join(dirOrFile, 'config.json');
    const bytes = (await stat(file)).size;
    if (bytes > MAX_CONFIG_BYTES) {
      throw new Error(`the file is ${bytes.toLocaleString('en-US')} bytes; a config.json is a few KB (at most ${MAX_CONFIG_BYTES / 2 ** 20} MiB is read)`);
    }
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read Hugging Face config: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseHFConfig(raw, file);
}

/** The camelCase architecture of a validated config. */
export function fromHFConfig(hf: LlamaHFConfig): Required<LlamaArchitecture> {
  return {
    vocabSize: hf.vocab_size,
    hiddenSize: hf.hidden_size,
    intermediateSize: hf.intermediate_size,
    numAttentionHeads: hf.num_attention_heads,
    numKeyValueHeads: hf.num_key_value_heads,
    numHiddenLayers: hf.num_hidden_layers,
    maxPositionEmbeddings: hf.max_position_embeddings,
    rmsNormEps: hf.rms_norm_eps,
    ropeTheta: hf.rope_theta,
    tieWordEmbeddings: hf.tie_word_embeddings,
    bosTokenId: hf.bos_token_id,
    eosTokenId: hf.eos_token_id,
    padTokenId: hf.pad_token_id,
    dtype: hf.torch_dtype,
    initializerRange: hf.initializer_range,
  };
}

/**
 * The complete config.json object for an architecture: every field transformers' LlamaConfig
 * reads, under both the 4.x names (`rope_theta`, `torch_dtype`) and 5.x's `rope_parameters`, so
 * `LlamaForCausalLM.from_pretrained(dir)` builds the same model in either version. The
 * result is validated by the same rules as a file read from disk.
 */
export function toHFConfig(arch: LlamaArchitecture): Record<string, unknown> {
  const theta = arch.ropeTheta ?? 10000;
  const heads = arch.numAttentionHeads;
  const out = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: arch.vocabSize,
    hidden_size: arch.hiddenSize,
    intermediate_size: arch.intermediateSize,
    num_hidden_layers: arch.numHiddenLayers,
    num_attention_heads: heads,
    num_key_value_heads: arch.numKeyValueHeads ?? heads,
    head_dim: arch.hiddenSize / heads,
    hidden_act: 'silu',
    max_position_embeddings: arch.maxPositionEmbeddings,
    initializer_range: arch.initializerRange ?? 0.02,
    rms_norm_eps: arch.rmsNormEps,
    rope_theta: theta,
    rope_parameters: { rope_type: 'default', rope_theta: theta },
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    pretraining_tp: 1,
    tie_word_embeddings: arch.tieWordEmbeddings ?? false,
    bos_token_id: arch.bosTokenId === undefined ? 1 : arch.bosTokenId,
    eos_token_id: arch.eosTokenId === undefined ? 2 : arch.eosTokenId,
    pad_token_id: arch.padTokenId ?? null,
    torch_dtype: arch.dtype ?? 'float32',
    use_cache: true,
  };
  parseHFConfig(out, 'config to write');
  return out;
}

/** Writes `<dir>/config.json` atomically (2-space JSON, as transformers formats it). */
export async function writeHFConfig(dir: string, arch: LlamaArchitecture): Promise<void> {
  await atomicWriteFile(join(dir, 'config.json'), `${JSON.stringify(toHFConfig(arch), null, 2)}\n`);
}
