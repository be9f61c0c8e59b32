/**
 * relora: pre-train LLaMA-style language models with ReLoRA (Lialin et al., ICLR 2024) — high-rank
 * training through low-rank updates — in TypeScript, with native CPU kernels.
 *
 * Two ways in:
 * - {@link train} runs a whole training job from a config (the same keys as `relora train`).
 * - The building blocks — {@link LlamaForCausalLM}, {@link wrapWithReLoRA} / {@link mergeAndReinit},
 *   {@link AdamW}, {@link makeSchedule}, {@link Tokenizer}, the corpora — make your own loop.
 *
 * Everything not exported here is internal and may change between versions.
 *
 * @packageDocumentation
 */

// ---- Training runs -----------------------------------------------------------------------

/** Run a training job from a config; callbacks for metrics, evaluations, restarts and phases. */
export { train, type TrainRunOptions } from './api/train.ts';
/** The callbacks `train` calls, and the summary it resolves with (also RUN/summary.json). */
export type { TrainHooks, TrainSummary } from './train/trainer.ts';
/**
 * The training config: `TrainConfigInput` is what you write (snake_case keys, all optional),
 * `resolveConfig` validates it and fills in defaults (throwing one `ConfigError` listing every
 * problem), `TrainConfig` is the result.
 */
export { resolveConfig, ConfigError, type TrainConfig, type TrainConfigInput } from './train/config.ts';
/** The records of RUN/metrics.jsonl, one JSON object per line. */
export type { MetricRecord, TrainRecord, EvalRecord, RestartRecord, RankRecord } from './train/metrics.ts';
/** Read a finished (or interrupted) run folder, or one checkpoint as a ready model. */
export { loadRun, loadCheckpoint, type Run, type Checkpoint, type LoadCheckpointOptions } from './api/run.ts';
/** Where training stood when a checkpoint was written (its state.json). */
export type { TrainState } from './train/checkpoint.ts';
/** Write RUN/report.html and RUN/plots/*.svg (loss, learning rate and restarts, tokens/s, rank growth) from a run folder. */
export { writeRunReport as writeReport } from './report/run-report.ts';
/** The files `writeReport` wrote. */
export type { ReportFiles } from './report/plot-files.ts';

// ---- Models ------------------------------------------------------------------------------

/** The LLaMA causal language model, with Hugging Face `fromPretrained` / `savePretrained`. */
export { LlamaForCausalLM, type FromPretrainedOptions, type SavePretrainedOptions } from './api/model.ts';
/**
 * Model shapes: `namedConfig('llama_60m', { vocabSize, maxSeqLen })` for the paper's sizes
 * (`NAMED_CONFIGS`), or a `LlamaConfig` of your own; `countParameters` counts its parameters.
 */
export { namedConfig, NAMED_CONFIGS, countParameters, type LlamaConfig } from './nn/config.ts';
/** The seven projections of a LLaMA layer that LoRA can wrap (q, k, v, o, gate, up, down). */
export { PROJECTIONS, type ProjectionName } from './nn/llama.ts';
/** The base class of every layer: named parameters, `stateDict`, `loadStateDict`, `train()` / `eval()`. */
export { Module } from './nn/module.ts';

// ---- ReLoRA ------------------------------------------------------------------------------

/** Wrap a model's projections with LoRA layers; merge them into the weights and restart. */
export { wrapWithReLoRA, mergeAndReinit, type ReLoRA, type ReLoRAOptions, type MergeOptions } from './api/relora.ts';
/** A wrapped projection: frozen `weight`, trainable `loraA` / `loraB`, scaled by alpha / r. */
export type { LoraLinear } from './relora/lora-linear.ts';

// ---- Optimisation ------------------------------------------------------------------------

/** AdamW with PyTorch's semantics (decoupled weight decay), and global gradient-norm clipping. */
export { AdamW, clipGradNorm, type AdamWOptions } from './optim/adamw.ts';
/**
 * Learning-rate schedules as multipliers λ(step) of the peak rate: `cosine_restarts` (ReLoRA's
 * jagged cosine with a short warm-up after every merge), `cosine`, `linear`, `constant`.
 */
export { makeSchedule, SCHEDULER_KINDS, type ScheduleConfig, type SchedulerKind } from './optim/schedule.ts';
/** One optimizer update: forward and backward over micro-batches, clipping, AdamW step. */
export { trainStep, type StepResult } from './train/step.ts';

// ---- Tensors and the compute backend -----------------------------------------------------

/**
 * `Tensor` (float32 or int32, with autodiff: `loss.backward()`); `scope(fn)` frees what `fn`
 * allocates except what it returns; `noGrad(fn)` runs without recording gradients.
 */
export { Tensor, scope, noGrad, type DType } from './engine/tensor.ts';
/** Differentiable operations: `ops.linear`, `ops.rmsnorm`, `ops.causalAttention`, `ops.crossEntropy`, … */
export * as ops from './api/ops.ts';
/** Choose the compute backend (`native`, `js` or `auto`) and thread count; `backendInfo()` says what is active. */
export { setBackend, backendInfo, type BackendName, type BackendInfo } from './engine/backend.ts';

// ---- Data --------------------------------------------------------------------------------

/** Tokenizers: `Tokenizer.fromPretrained(dir)`, `Tokenizer.train(docs, { vocabSize })`, `Tokenizer.save`. */
export { Tokenizer, type TrainTokenizerOptions } from './api/tokenizer.ts';
/** Document sources: the shipped Brown corpus, your .txt / .jsonl / .parquet files, or strings in memory. */
export { brownCorpus, fileCorpus, memoryCorpus, type Corpus, type FileCorpusOptions } from './data/corpus.ts';
/** Tokenised documents → fixed-length training sequences (each document followed by EOS; no padding). */
export { packSequences } from './data/packing.ts';

// ---- Generation and export ---------------------------------------------------------------

/** Sampling with a KV cache, from token ids (`generate`) or from text (`generateText`). */
export { generate, type GenerateOptions } from './infer/generate.ts';
/** `generateText(model, tokenizer, prompt, options)`: continue a text prompt, optionally streamed. */
export { generateText, type GenerateTextOptions } from './api/generate.ts';
/** Write a run, checkpoint or model as a Hugging Face folder (LoRA merged) that `transformers` loads. */
export { exportHf } from './api/export.ts';
