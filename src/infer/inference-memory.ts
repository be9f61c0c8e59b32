/**
 * How much memory holding a model for inference (generate, eval, export) needs, estimated from
 * its shape alone, so that a model this machine cannot hold — a Hugging Face folder whose
 * config.json (and matching weight headers) describe a huge model — is refused before anything
 * is allocated, instead of swapping the machine to a halt. Like the training estimate
 * (src/train/memory.ts) it counts fp32 values and errs on the high side.
 */
import { totalmem } from 'node:os';
import { countParameters, headDimOf, kvHeadsOf, type LlamaConfig } from '../nn/config.ts';
import { ResourceError } from '../train/memory.ts';
import { formatBytes } from '../train/units.ts';

export interface InferenceEstimate {
  params: number;
  /** The rotary cos/sin tables, one row per position up to maxSeqLen. */
  ropeTables: number;
  /** The KV cache and one forward pass's activations (attention probabilities, logits) over `tokens`. */
  context: number;
  /** Node, the libraries and the native addon. */
  runtime: number;
  total: number;
  /** The context length the estimate is for. */
  tokens: number;
}

const F32 = 4;
const RUNTIME_BYTES = 160 * 2 ** 20;
/** The context an estimate assumes when the caller does not know it yet (a prompt plus new tokens). */
const DEFAULT_CONTEXT = 2048;

/** The estimate for a model of shape `c` run over `tokens` positions (default: up to 2048). */
export function estimateInferenceMemory(c: LlamaConfig, tokens = Math.min(c.maxSeqLen, DEFAULT_CONTEXT)): InferenceEstimate {
  const d = c.hiddenSize, f = c.intermediateSize, hd = headDimOf(c);
  const kvCache = 2 * c.numLayers * tokens * kvHeadsOf(c) * hd;
  // One layer's intermediates at a time (norms, q k v, attention output, residuals, gate, up,
  // SwiGLU), the attention probabilities, and the logits of every position.
  const forward = tokens * (6 * d + 3 * f) + c.numHeads * tokens * tokens + tokens * c.vocabSize;
  const e = {
    params: countParameters(c) * F32,
    ropeTables: c.maxSeqLen * hd * F32,
    context: (kvCache + forward) * F32,
    runtime: RUNTIME_BYTES,
  };
  return { ...e, total: e.params + e.ropeTables + e.context + e.runtime, tokens };
}

export function describeInferenceEstimate(e: InferenceEstimate): string {
  return `${formatBytes(e.total)} (parameters ${formatBytes(e.params)}, rotary tables ${formatBytes(e.ropeTables)}, ` +
    `KV cache and activations for ${e.tokens} tokens ${formatBytes(e.context)}, runtime ${formatBytes(e.runtime)})`;
}

/**
 * Throws a ResourceError naming `what` when a model of shape `c` does not fit in `available`
 * bytes (default: this machine's memory). Returns the estimate's description.
 */
export function checkInferenceMemory(c: LlamaConfig, opts: { what: string; available?: number; tokens?: number }): string {
  const available = opts.available ?? totalmem();
  const e = estimateInferenceMemory(c, opts.tokens);
  const text = describeInferenceEstimate(e);
  if (e.total > available) {
    throw new ResourceError(`${opts.what} needs an estimated ${text}, more than this machine's ${formatBytes(available)} of memory`);
  }
  return text;
}
