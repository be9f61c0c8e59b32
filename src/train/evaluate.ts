/** Evaluation: the mean loss over a fixed set of held-out sequences. */
import { noGrad, scope, Tensor } from '../engine/tensor.ts';
import type { TokenDataset } from '../data/token-dataset.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { shareOf, type Communicator } from '../parallel/communicator.ts';

/** Mean loss over the fixed held-out sequences. */
export function evaluate(model: LlamaForCausalLM, evalSeqs: Int32Array[], seqLen: number, microBatch: number): number {
  model.eval();
  let total = 0, count = 0;
  noGrad(() => {
    for (let i = 0; i < evalSeqs.length; i += microBatch) {
      const batch = evalSeqs.slice(i, i + microBatch);
      const ids = new Int32Array(batch.length * seqLen);
      batch.forEach((s, j) => ids.set(s, j * seqLen));
      total += scope(() => model.loss(Tensor.from(ids, [batch.length, seqLen])).item()) * batch.length;
      count += batch.length;
    }
  });
  model.train();
  return total / count;
}

/** `evaluate` with the sequences split over the processes of a data-parallel job, and the losses summed. */
export function evaluateShared(comm: Communicator, model: LlamaForCausalLM, evalSeqs: Int32Array[], seqLen: number, microBatch: number): number {
  if (comm.size === 1) return evaluate(model, evalSeqs, seqLen, microBatch);
  const { start, count } = shareOf(evalSeqs.length, comm.rank, comm.size);
  const sums = new Float64Array([count ? evaluate(model, evalSeqs.slice(start, start + count), seqLen, microBatch) * count : 0, count]);
  comm.allReduceF64(sums, 'sum');
  return sums[0] / sums[1];
}

/**
 * The evaluation sequences of a run: the first `evalTokens / seqLen` of the validation set (all of
 * them if fewer). A validation set still being tokenised must hold that many already (prepareData waits for it).
 */
export function evaluationSequences(validation: TokenDataset, seqLen: number, evalTokens: number): Int32Array[] {
  const count = Math.min(Math.floor(evalTokens / seqLen), validation.sequencesAvailable(seqLen));
  return Array.from({ length: count }, (_, i) => validation.readSequence(i, seqLen));
}
