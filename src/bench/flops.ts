/**
 * Model FLOPs of one training step: the products an ideal implementation of the mode must form
 * (tools/reference/bench_torch.py step_flops counts the same way, so MFU compares like with like).
 *
 * - A trainable Linear [out, in] over `tok` rows: forward, dX and dW, 2·tok·in·out each.
 * - A LoRA-wrapped Linear: forward and dX through W (no dW: W is frozen), plus the rank-r
 *   factors' forward, dX and dA/dB products; without LoRA dropout, in the order with fewer
 *   FLOPs (ops.loraProductOrder: merged is W + s·B·A twice, x·Aᵀ, dA, dB and g·B).
 * - Causal attention: q·kᵀ and P·v over the lower triangle, forward once, backward twice.
 * - lm_head is trainable in every mode; the embedding lookup and the elementwise work are free.
 */
import { loraProductOrder } from '../engine/ops/lora-linear.ts';
import type { LlamaConfig } from '../nn/config.ts';
import type { TrainingMode } from '../relora/wrap.ts';

export function stepFlops(cfg: LlamaConfig, mode: TrainingMode, rank: number, batch: number, seqLen: number, loraDropout = true): number {
  const d = cfg.hiddenSize, f = cfg.intermediateSize, tok = batch * seqLen;
  const shapes: [number, number][] = [[d, d], [d, d], [d, d], [d, d], [d, f], [d, f], [f, d]];
  let perLayer = 0;
  for (const [inF, outF] of shapes) {
    if (mode === 'full') perLayer += 6 * tok * inF * outF;
    else if (loraProductOrder(tok, inF, outF, rank, loraDropout, true) === 'merged') perLayer += 4 * tok * inF * outF + 4 * rank * inF * outF + 4 * tok * rank * (inF + outF);
    else perLayer += 4 * tok * inF * outF + 6 * tok * rank * (inF + outF);
  }
  perLayer += 6 * batch * d * seqLen * seqLen;
  return cfg.numLayers * perLayer + 6 * tok * d * cfg.vocabSize;
}
