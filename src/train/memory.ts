/**
 * How much memory a training config needs, estimated from the config alone, so that a run that
 * cannot fit is refused before it tokenises data or allocates anything (instead of swapping the
 * machine to a halt or being killed hours in).
 *
 * The estimate counts fp32 values: parameters, gradients, the two AdamW moments, the
 * activations one micro-batch keeps for the backward pass, the buffer pool (which keeps a
 * step's freed buffers for the next step, and holds the activation gradients of the backward
 * pass) and the Node runtime itself. It errs on the high side.
 */
import { totalmem } from 'node:os';
import { defaultChunkRows } from '../engine/ops/loss.ts';
import { formatBytes } from './units.ts';
import { loraProductOrder } from '../engine/ops/lora-linear.ts';
import type { LlamaConfig } from '../nn/config.ts';
import type { ProjectionName } from '../nn/llama.ts';
import { projectionShape, trainingFootprint } from '../relora/accounting.ts';
import type { TrainingMode, WrapOptions } from '../relora/wrap.ts';

export interface MemoryEstimate {
  params: number;
  grads: number;
  optimizer: number;
  /** Tensors one micro-batch keeps alive for the backward pass. */
  activations: number;
  /** Freed step buffers the pool keeps for reuse, and the activation gradients of the backward pass. */
  pool: number;
  /** Node, the libraries and the native addon. */
  runtime: number;
  total: number;
}

export interface MemoryInputs {
  model: LlamaConfig;
  mode: TrainingMode;
  lora: WrapOptions;
  microBatch: number;
  seqLen: number;
  /**
   * Peak bytes of training the tokenizer first (data/bpe-train.ts tokenizerTrainingMemoryBytes),
   * when the run trains one. It happens before the model exists, so the total is the larger of
   * the two phases.
   */
  tokenizerTrainingBytes?: number;
}

const RUNTIME_BYTES = 160 * 2 ** 20;
const F32 = 4;

/** Floats the autograd graph of one micro-batch keeps until backward. */
function activationFloats(m: LlamaConfig, mode: TrainingMode, lora: WrapOptions, B: number, T: number): number {
  const d = m.hiddenSize, f = m.intermediateSize, h = m.numHeads, V = m.vocabSize;
  const bt = B * T;
  // Per layer: two RMSNorms (input and output each), q k v, their rotated/repeated copies,
  // the attention output and probabilities, o_proj, two residual sums, gate, up, SwiGLU, down.
  let perLayer = 4 * bt * d + 3 * bt * d + 3 * bt * d + bt * d + B * h * T * T + bt * d + 2 * bt * d + 3 * bt * f + bt * d;
  // A wrapped projection in the factored order also keeps x·Aᵀ [tokens, r] (ops.loraLinear
  // regenerates its dropout mask); in the merged order it keeps nothing extra.
  if (mode !== 'full') {
    for (const name of lora.targetModules as ProjectionName[]) {
      const [inF, outF] = projectionShape(m, name);
      if (loraProductOrder(bt, inF, outF, lora.rank, lora.dropout > 0, true) === 'factored') perLayer += bt * lora.rank;
    }
  }
  // Final norm, one chunk of logits (ops.linearCrossEntropy) and the hidden state's gradient.
  return m.numLayers * perLayer + 3 * bt * d + Math.min(bt, defaultChunkRows(V)) * V;
}

export function estimateTrainingMemory(inp: MemoryInputs): MemoryEstimate {
  const fp = trainingFootprint(inp.model, inp.mode, inp.lora);
  const activations = activationFloats(inp.model, inp.mode, inp.lora, inp.microBatch, inp.seqLen) * F32;
  const e = {
    params: fp.bytes_params,
    grads: fp.bytes_grads,
    optimizer: fp.bytes_optimizer,
    activations,
    // With this share the estimate errs high: the measured peak RSS of llama_60m (2,048 tokens,
    // vocabulary 32100) is 67% of it in full mode and 65% in relora mode.
    pool: Math.round(0.75 * activations),
    runtime: RUNTIME_BYTES,
  };
  const training = e.params + e.grads + e.optimizer + e.activations + e.pool + e.runtime;
  return { ...e, total: Math.max(training, inp.tokenizerTrainingBytes ?? 0) };
}


export function describeEstimate(e: MemoryEstimate): string {
  return `${formatBytes(e.total)} (parameters ${formatBytes(e.params)}, gradients ${formatBytes(e.grads)}, ` +
    `optimizer ${formatBytes(e.optimizer)}, activations ${formatBytes(e.activations)}, buffer pool ${formatBytes(e.pool)}, runtime ${formatBytes(e.runtime)})`;
}

/** A config that does not fit this machine. */
export class ResourceError extends Error {}

/**
 * Throws a ResourceError when the estimate exceeds `available` bytes (default: this machine's
 * total memory), unless `force`. Returns the estimate's description for the log.
 */
export function checkMemory(e: MemoryEstimate, opts: { available?: number; force?: boolean; what?: string } = {}): string {
  const available = opts.available ?? totalmem();
  const text = describeEstimate(e);
  if (e.total > available && opts.force) return `${text}: more than this machine's ${formatBytes(available)}, starting anyway (--force)`;
  if (e.total > available) {
    throw new ResourceError(
      `${opts.what ?? 'this configuration'} needs an estimated ${text}, more than this machine's ${formatBytes(available)} of memory; ` +
      'reduce micro_batch, seq_len or the model size, or pass --force to start anyway',
    );
  }
  return text;
}
