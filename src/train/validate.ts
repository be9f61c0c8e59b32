/**
 * Every input of a run, checked before any work: the run folder, an imported model's config.json
 * and shape (config.json only, not the weights), the tokenizer file, the vocabulary and sequence
 * length against both, a warm-start checkpoint, and the memory estimate on the real shape. A run
 * refused here has read files but written none, tokenised nothing and allocated no model.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../data/tokenizer-files.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { readHFConfig, type LlamaHFConfig } from '../io/hf-config.ts';
import { llamaConfigFromHF } from '../io/hf-model.ts';
import type { LlamaConfig } from '../nn/config.ts';
import type { TrainingMode } from '../relora/wrap.ts';
import { loadCheckpoint, type LoadedCheckpoint } from './checkpoint.ts';
import { loraOptions, modelConfigFor, type TrainConfig } from './config.ts';
import { checkMemory, estimateTrainingMemory } from './memory.ts';
import { openCheckpoint, readRunModelConfig, runFile, verifyRunFiles } from './run-folder.ts';
import type { TrainOptions } from './trainer.ts';

/** What the checks learnt that set-up goes on with. */
export interface RunInputs {
  /**
   * The model's shape: exact for an imported or resumed model; for a new one the vocabulary is
   * an upper bound until a tokenizer trained on the data gives the exact size.
   */
  shape: LlamaConfig;
  /** A resumed run's own shape (RUN/model.json); the model is then built from it. */
  savedShape: LlamaConfig | null;
  /** The imported model's config.json, when the model is imported (`init_from`). */
  imported: LlamaHFConfig | null;
  /** The tokenizer the run uses, loaded from its file; undefined when one is trained on the data. */
  tokenizer?: Tokenizer;
  /** The full-rank checkpoint the low-rank phase starts from (`--warm-start`). */
  warmStart: LoadedCheckpoint | null;
}

/** Throws a clear error for the first input that cannot work; logs the memory estimate. */
export async function validateInputs(opts: TrainOptions, log: (s: string) => void, leader = true): Promise<RunInputs> {
  const { config: cfg, runDir } = opts;
  // A resumed run goes on with the files it was started with, unchanged. (Ranks other than 0 of a
  // data-parallel job come after rank 0 has started the run in the folder.)
  if (opts.resume) verifyRunFiles(runDir);
  else if (leader) refuseExistingRun(runDir);
  // It keeps the shape it was started with (RUN/model.json); the model it was imported from is
  // not read again.
  const savedShape = opts.resume && existsSync(runFile(runDir, 'model')) ? readRunModelConfig(runDir) : null;
  const imported = cfg.init_from && !savedShape ? await readImportedConfig(cfg.init_from) : null;
  const tokenizerPath = tokenizerFileOf(cfg, runDir);
  const tokenizer = tokenizerPath ? await loadTokenizer(tokenizerPath) : undefined;
  const tokenizerVocab = tokenizer ? tokenizer.vocabSize : null;
  const shape = savedShape ?? (imported ? importedShape(imported, cfg) : modelConfigFor(cfg, tokenizerVocab ?? cfg.tokenizer_vocab_size));
  checkVocabulary(cfg, shape, tokenizerPath, tokenizerVocab);
  const estimate = estimateTrainingMemory({ model: shape, mode: cfg.mode as TrainingMode, lora: loraOptions(cfg), microBatch: cfg.micro_batch, seqLen: cfg.seq_len });
  const what = imported ? `continuing ${join(cfg.init_from!, 'config.json')} (${describeShape(imported)})` : 'this training configuration';
  log(`estimated memory: ${checkMemory(estimate, { available: opts.memoryLimitBytes, force: opts.force, what })}`);
  const warmStart = opts.warmStartFrom ? loadWarmStart(opts.warmStartFrom, cfg, log) : null;
  return { shape, savedShape, imported, tokenizer, warmStart };
}

/** A new run must not overwrite one: a folder holding a run's config or metrics is refused. */
function refuseExistingRun(runDir: string): void {
  if (existsSync(runFile(runDir, 'config')) || existsSync(runFile(runDir, 'metrics'))) {
    throw new Error(`output folder ${runDir} already holds a run; continue it with --resume ${runDir}, or choose another --out`);
  }
}

/** config.json of the Hugging Face folder to continue, validated field by field. */
async function readImportedConfig(dir: string): Promise<LlamaHFConfig> {
  if (!existsSync(dir)) throw new Error(`--init-from ${dir}: no such folder`);
  if (!statSync(dir).isDirectory()) throw new Error(`--init-from ${dir}: is a file; expected a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)`);
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new Error(`${file} is missing; a Hugging Face model folder has config.json next to its weights`);
  return readHFConfig(file);
}

function describeShape(hf: LlamaHFConfig): string {
  return `num_hidden_layers ${hf.num_hidden_layers}, hidden_size ${hf.hidden_size}, intermediate_size ${hf.intermediate_size}, vocab_size ${hf.vocab_size}`;
}

/** The imported model's shape with rotary tables for the run's sequence length. */
function importedShape(hf: LlamaHFConfig, cfg: TrainConfig): LlamaConfig {
  const file = join(cfg.init_from!, 'config.json');
  if (cfg.seq_len > hf.max_position_embeddings) {
    throw new Error(`seq_len ${cfg.seq_len} exceeds max_position_embeddings ${hf.max_position_embeddings} of ${file}; choose a seq_len of at most ${hf.max_position_embeddings}`);
  }
  try {
    return llamaConfigFromHF(hf, cfg.seq_len);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The tokenizer file a run uses: its own copy once it has one (a resumed run), the imported
 * model's, or the one the config names; undefined when a tokenizer is to be trained.
 */
function tokenizerFileOf(cfg: TrainConfig, runDir: string): string | undefined {
  const own = runFile(runDir, 'tokenizer');
  if (existsSync(own)) return own;
  if (cfg.init_from) {
    const file = join(cfg.init_from, 'tokenizer.json');
    if (!existsSync(file)) throw new Error(`--init-from ${cfg.init_from}: the folder has no tokenizer.json; relora continues pre-training with the model's own tokenizer`);
    return file;
  }
  return cfg.tokenizer;
}

/** The embedding must have a row for every token id the tokenizer produces. */
function checkVocabulary(cfg: TrainConfig, shape: LlamaConfig, tokenizerPath: string | undefined, tokenizerVocab: number | null): void {
  if (tokenizerVocab !== null && shape.vocabSize < tokenizerVocab) {
    const source = cfg.init_from ? `${join(cfg.init_from, 'config.json')} has vocab_size ${shape.vocabSize}` : `vocab_size ${shape.vocabSize}`;
    throw new Error(`${source}, smaller than the vocabulary of ${tokenizerPath} (${tokenizerVocab}); the embedding needs a row for every token id`);
  }
  if (tokenizerVocab === null && cfg.vocab_size !== undefined && cfg.vocab_size < cfg.tokenizer_vocab_size) {
    throw new Error(`vocab_size ${cfg.vocab_size} is smaller than tokenizer_vocab_size ${cfg.tokenizer_vocab_size}, the vocabulary of the tokenizer this run trains; raise vocab_size or lower tokenizer_vocab_size`);
  }
}

/** A full-rank checkpoint to start the low-rank phase from, checked against the run. */
function loadWarmStart(path: string, cfg: TrainConfig, log: (s: string) => void): LoadedCheckpoint {
  const ck = openCheckpoint(path, loadCheckpoint, (m) => log(`warning: ${m}`), '--warm-start').value;
  if (ck.state.phase !== 'full') throw new Error(`--warm-start ${path}: checkpoint is from a ${ck.state.phase} phase; a full-rank checkpoint is needed`);
  if (cfg.mode === 'full') throw new Error('--warm-start needs mode lora or relora');
  if (ck.state.step >= cfg.steps) throw new Error(`--warm-start: the checkpoint is at update ${ck.state.step}, but the run has only ${cfg.steps} updates`);
  return ck;
}
