/** LLaMA model configurations: the reference's named sizes (spec section 2) and custom ones. */

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

export function validateConfig(c: LlamaConfig): LlamaConfig {
  const ints: (keyof LlamaConfig)[] = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numHeads', 'numLayers', 'maxSeqLen'];
  for (const k of ints) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1) throw new Error(`model config: ${k} must be a positive integer, got ${v}`);
  }
  if (c.hiddenSize % c.numHeads !== 0) {
    throw new Error(`model config: hiddenSize ${c.hiddenSize} must be divisible by numHeads ${c.numHeads}`);
  }
  if ((c.hiddenSize / c.numHeads) % 2 !== 0) {
    throw new Error(`model config: head dimension ${c.hiddenSize / c.numHeads} must be even for rotary embeddings`);
  }
  if (!(c.rmsNormEps > 0)) throw new Error(`model config: rmsNormEps must be > 0, got ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 0)) throw new Error(`model config: ropeTheta must be > 0, got ${c.ropeTheta}`);
  return c;
}

/** Parameter count of the full model (embeddings, layers, final norm, untied head). */
export function countParameters(c: LlamaConfig): number {
  const d = c.hiddenSize, f = c.intermediateSize;
  const perLayer = 4 * d * d + 3 * d * f + 2 * d;
  return 2 * c.vocabSize * d + c.numLayers * perLayer + d;
}
