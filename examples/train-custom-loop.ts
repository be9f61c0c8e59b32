/**
 * Your own ReLoRA training loop on your own text: train a tokenizer, pack the documents into
 * sequences, train full-rank for a while (the warm start), then wrap the model with LoRA and
 * merge the factors into the weights every `cycle` updates, with a jagged learning rate that
 * restarts after each merge. The model is saved as a Hugging Face folder.
 *
 *   npx tsx examples/train-custom-loop.ts [TEXT_FILE] [OUT_DIR]
 *
 * TEXT_FILE holds documents separated by blank lines (default: the Brown corpus shipped with relora).
 */
import { readFileSync } from 'node:fs';
import {
  AdamW, backendInfo, brownCorpus, LlamaForCausalLM, makeSchedule, mergeAndReinit, noGrad, packSequences, scope, Tensor,
  Tokenizer, trainStep, wrapWithReLoRA,
} from 'relora';

const [textFile, outDir = 'runs/custom-loop-hf'] = process.argv.slice(2);
const documents: string[] = [];
if (textFile) documents.push(...readFileSync(textFile, 'utf8').split(/\n\s*\n/).filter((d) => d.trim()));
else for await (const doc of brownCorpus('train').documents()) documents.push(doc);

const seqLen = 64, batchSize = 8, warmStartSteps = 40, reloraSteps = 120, cycle = 40;
const tokenizer = await Tokenizer.train(documents, { vocabSize: 1000 });
const sequences = [...packSequences(documents.map((d) => tokenizer.encode(d)), tokenizer.eosId, seqLen)];
const validation = sequences.splice(0, Math.max(1, Math.floor(sequences.length / 20)));
console.log(`${documents.length} documents, ${sequences.length} training sequences of ${seqLen} tokens; backend ${backendInfo().backend}`);

const model = new LlamaForCausalLM({
  vocabSize: tokenizer.vocabSize, hiddenSize: 64, intermediateSize: 176, numHeads: 4, numLayers: 2,
  maxSeqLen: seqLen, rmsNormEps: 1e-6, ropeTheta: 10000,
}).initWeights(0);

/** Sequences as one int32 batch [count, seqLen]. */
const stack = (seqs: Int32Array[]): Tensor => {
  const ids = new Int32Array(seqs.length * seqLen);
  seqs.forEach((s, b) => ids.set(s, b * seqLen));
  return Tensor.from(ids, [seqs.length, seqLen]);
};
/** The i-th batch of training sequences (wrapping around). */
const batch = (i: number): Tensor => stack(Array.from({ length: batchSize }, (_, b) => sequences[(i * batchSize + b) % sequences.length]));
/** Mean loss on the held-out sequences, without recording gradients. */
const validationLoss = (): number => noGrad(() => {
  model.eval();
  const loss = scope(() => model.loss(stack(validation)).item());
  model.train();
  return loss;
});

// 1. Full-rank warm start.
let optimizer = new AdamW(model.namedTrainableParameters(), { lr: 2e-3 });
for (let step = 0; step < warmStartSteps; step++) trainStep(model, optimizer, [batch(step)], 2e-3, 1.0);
console.log(`after the full-rank warm start: validation loss ${validationLoss().toFixed(3)}`);

// 2. ReLoRA: W frozen, only the LoRA factors (and embeddings, norms, head) train; merge every `cycle` updates.
optimizer.dispose();
const relora = wrapWithReLoRA(model, { rank: 8, alpha: 32, dropout: 0 });
optimizer = new AdamW(model.namedTrainableParameters(), { lr: 4e-3 });
const lambda = makeSchedule({ scheduler: 'cosine_restarts', steps: reloraSteps, warmupSteps: 5, restartWarmupSteps: 5, cycleLength: cycle });
for (let u = 1; u <= reloraSteps; u++) {
  const { loss } = trainStep(model, optimizer, [batch(warmStartSteps + u)], 4e-3 * lambda(u - 1), 1.0);
  if (u % cycle === 0) {
    mergeAndReinit(relora, { optimizer });
    console.log(`update ${u}: training loss ${loss.toFixed(3)}, merge ${relora.counters.merges}, validation loss ${validationLoss().toFixed(3)}`);
  }
}

// 3. Save as a Hugging Face folder (LoRA merged): transformers, `relora generate` and examples/generate.ts load it.
const files = await model.savePretrained(outDir, { tokenizer, overwrite: true });
console.log(`saved ${files.length} files to ${outDir}`);
