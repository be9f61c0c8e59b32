/** LLaMA model configurations: the reference's named sizes (docs/method.md, "Model") and custom ones. */

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numLayers: number;
  /** Longest sequence the rotary tables are built for (Hugging Face max_position_embeddings). */
  maxSeqLen: number;
  rmsNormEps: number;
  ropeTheta: number;
  /**
   * Key/value heads (Hugging Face num_key_value_heads); fewer than numHeads is grouped-query
   * attention, each group of numHeads / numKVHeads query heads sharing one K/V head.
   * Default numHeads.
   */
  numKVHeads?: number;
  /** lm_head reuses the embedding table (Hugging Face tie_word_embeddings). Default false. */
  tieWordEmbeddings?: boolean;
}

/** Width of one attention head. */
export function headDimOf(c: LlamaConfig): number {
  return c.hiddenSize / c.numHeads;
}

export function kvHeadsOf(c: LlamaConfig): number {
  return c.numKVHeads ?? c.numHeads;
}

type Shape = Pick<LlamaConfig, 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numLayers'>;

const shape = (hiddenSize: number, intermediateSize: number, numHeads: number, numLayers: number): Shape => ({
  hiddenSize, intermediateSize, numHeads, numLayers,
});

/** The reference's configs (vocab 32100, sequence length 1024 by default; both overridable). */
export const NAMED_CONFIGS: Record<string, Shape> = {
  llama_9m: shape(128, 352, 4, 4),
  llama_20m: shape(256, 688, 4, 4),
  llama_35m: shape(384, 1024, 8, 6),
  llama_40m: shape(416, 1024, 8, 8),
  llama_60m: shape(512, 1376, 8, 8),
  llama_71m: shape(512, 1368, 8, 12),
  llama_100m: shape(640, 1708, 10, 12),
  llama_130m: shape(768, 2048, 12, 12),
  llama_250m: shape(768, 2560, 16, 24),
  llama_350m: shape(1024, 2736, 16, 24),
  llama_1b: shape(2048, 5461, 32, 24),
};

export const DEFAULT_VOCAB_SIZE = 32100;
export const DEFAULT_MAX_SEQ_LEN = 1024;

export function namedConfig(name: string, overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  const s = NAMED_CONFIGS[name];
  if (!s) {
    throw new Error(`unknown model "${name}"; known models: ${Object.keys(NAMED_CONFIGS).join(', ')} (or give a custom config)`);
  }
  return validateConfig({
    vocabSize: DEFAULT_VOCAB_SIZE,
    maxSeqLen: DEFAULT_MAX_SEQ_LEN,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ...s,
    ...overrides,
  });
}

/** Checks a config and returns it with the optional fields filled in. */
export function validateConfig(c: LlamaConfig): LlamaConfig {
  const ints = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numHeads', 'numLayers', 'maxSeqLen'] as const;
  for (const k of ints) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1) throw new Error(`model config: ${k} must be a positive integer, got ${v}`);
  }
  const kv = kvHeadsOf(c);
  if (!Number.isInteger(kv) || kv < 1 || c.numHeads % kv !== 0) {
    throw new Error(`model config: numKVHeads must be a positive divisor of numHeads ${c.numHeads}, got ${kv}`);
  }
  if (c.tieWordEmbeddings !== undefined && typeof c.tieWordEmbeddings !== 'boolean') {
    throw new Error(`model config: tieWordEmbeddings must be true or false, got ${String(c.tieWordEmbeddings)}`);
  }
  if (c.hiddenSize % c.numHeads !== 0) {
    throw new Error(`model config: hiddenSize ${c.hiddenSize} must be divisible by numHeads ${c.numHeads}`);
  }
  if ((c.hiddenSize / c.numHeads) % 2 !== 0) {
    throw new Error(`model config: head dimension ${c.hiddenSize / c.numHeads} must be even for rotary embeddings`);
  }
  if (!(c.rmsNormEps > 0)) throw new Error(`model config: rmsNormEps must be > 0, got ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 0)) throw new Error(`model config: ropeTheta must be > 0, got ${c.ropeTheta}`);
  return { ...c, numKVHeads: kv, tieWordEmbeddings: c.tieWordEmbeddings ?? false };
}

/** Parameter count of the full model (embeddings, layers, final norm, head unless tied). */
export function countParameters(c: LlamaConfig): number {
  const d = c.hiddenSize, f = c.intermediateSize, kvDim = kvHeadsOf(c) * headDimOf(c);
  const perLayer = 2 * d * d + 2 * d * kvDim + 3 * d * f + 2 * d;
  return (c.tieWordEmbeddings ? 1 : 2) * c.vocabSize * d + c.numLayers * perLayer + d;
}

/**
 * The config as the JSON a run folder keeps (RUN/model.json), so a model that came from
 * elsewhere (grouped-query attention, tied embeddings, its own eps and rope base) is rebuilt
 * exactly when the run is resumed, exported or sampled.
 */
export function configToJSON(c: LlamaConfig): Record<string, number | boolean> {
  const v = validateConfig(c);
  return {
    vocabSize: v.vocabSize, hiddenSize: v.hiddenSize, intermediateSize: v.intermediateSize,
    numHeads: v.numHeads, numKVHeads: v.numKVHeads!, numLayers: v.numLayers, maxSeqLen: v.maxSeqLen,
    rmsNormEps: v.rmsNormEps, ropeTheta: v.ropeTheta, tieWordEmbeddings: v.tieWordEmbeddings!,
  };
}

/** Parses what configToJSON wrote; `source` names the file in errors. */
export function configFromJSON(raw: unknown, source: string): LlamaConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${source}: expected a JSON object with the model's shape`);
  const r = raw as Record<string, unknown>;
  const num = (k: string, optional = false): number | undefined => {
    const v = r[k];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'number') throw new Error(`${source}: field "${k}" is ${JSON.stringify(v) ?? 'missing'}; expected a number`);
    return v;
  };
  const tie = r.tieWordEmbeddings;
  if (tie !== undefined && typeof tie !== 'boolean') throw new Error(`${source}: field "tieWordEmbeddings" is ${JSON.stringify(tie)}; expected true or false`);
  try {
    return validateConfig({
      vocabSize: num('vocabSize')!, hiddenSize: num('hiddenSize')!, intermediateSize: num('intermediateSize')!,
      numHeads: num('numHeads')!, numKVHeads: num('numKVHeads', true), numLayers: num('numLayers')!,
      maxSeqLen: num('maxSeqLen')!, rmsNormEps: num('rmsNormEps')!, ropeTheta: num('ropeTheta')!, tieWordEmbeddings: tie,
    });
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`, { cause: e });
  }
}
