/**
 * Everything the trainer reads: the tokenizer (trained or loaded), the tokenised training and
 * validation sets (cached on disk), the fixed evaluation sequences.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { brownCorpus, fileCorpus, type Corpus } from '../data/corpus.ts';
import { splitCorpus } from '../data/split.ts';
import { DEFAULT_MAX_WORDS, trainByteLevelBpeOnCorpus } from '../data/bpe-train.ts';
import { loadTokenizer, saveTokenizer } from '../data/tokenizer-files.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { shardSequences } from '../data/sampler.ts';
import { TokenDataset, type TokenCacheBuild } from '../data/token-dataset.ts';
import { defaultTokenizerWorkers } from '../data/encode-batches.ts';
import type { TrainConfig } from './config.ts';

export interface PreparedData {
  tokenizer: Tokenizer;
  train: TokenDataset;
  validation: TokenDataset;
  trainName: string;
  validationName: string;
  /** Stops tokenising still going on (the next run resumes the partial caches); resolves when stopped. */
  stop: () => Promise<void>;
}

export interface PrepareOptions {
  /**
   * Return once the first shard of the training data and the evaluation sequences are tokenised;
   * the rest is tokenised while training (the sampler waits for a shard it needs). Default:
   * return when both caches are complete.
   */
  overlap?: boolean;
}

export function cacheDir(): string {
  return process.env.RELORA_CACHE_DIR ?? join(homedir(), '.cache', 'relora');
}

/** Logs each distinct note once (the corpus is read more than once: tokenizer, training, validation). */
function notesOnce(log: (s: string) => void): (message: string) => void {
  const seen = new Set<string>();
  return (message) => {
    if (!seen.has(message)) log(message);
    seen.add(message);
  };
}

async function corpora(cfg: TrainConfig, log: (s: string) => void): Promise<{ train: Corpus; validation: Corpus }> {
  const opts = { textField: cfg.text_field, txtMode: cfg.txt_mode, onNote: notesOnce(log) };
  if (!cfg.data) {
    if (cfg.validation) return { train: brownCorpus('train'), validation: await fileCorpus(cfg.validation, opts) };
    return { train: brownCorpus('train'), validation: brownCorpus('validation') };
  }
  const train = await fileCorpus(cfg.data, opts);
  if (cfg.validation) return { train, validation: await fileCorpus(cfg.validation, opts) };
  return splitCorpus(train, cfg.val_fraction);
}

/**
 * The tokenizer: `tokenizerPath` (a run's saved one, or the user's), else a byte-level BPE trained
 * on the training corpus (cached by corpus fingerprint and vocabulary size).
 */
async function tokenizerFor(cfg: TrainConfig, train: Corpus, log: (s: string) => void, tokenizerPath?: string | Tokenizer): Promise<Tokenizer> {
  if (typeof tokenizerPath === 'object') return tokenizerPath; // loaded already (the trainer checks it before any data is read)
  const path = tokenizerPath ?? cfg.tokenizer;
  if (path) return loadTokenizer(path);
  const key = createHash('sha256').update(`bpe|${train.fingerprint}|${cfg.tokenizer_vocab_size}`).digest('hex').slice(0, 24);
  const cached = join(cacheDir(), 'tokenizers', `${key}.json`);
  if (existsSync(cached)) return loadTokenizer(cached);
  const t0 = Date.now();
  log(`training a byte-level BPE tokenizer (vocabulary ${cfg.tokenizer_vocab_size}) on ${train.name} …`);
  const { tokenizer: tok, sample } = await trainByteLevelBpeOnCorpus(train, { vocabSize: cfg.tokenizer_vocab_size });
  log(
    `tokenizer sample: ${sample.documents} documents, ${(sample.chars / 2 ** 20).toFixed(1)} Mi characters ` +
      `(${sample.rate < 1 ? `about ${(100 * sample.rate).toFixed(1)}% of the documents` : 'the whole corpus'}), ` +
      `${sample.distinctWords} distinct words kept (at most ${DEFAULT_MAX_WORDS})`,
  );
  mkdirSync(join(cacheDir(), 'tokenizers'), { recursive: true });
  await saveTokenizer(tok, cached);
  log(`tokenizer trained in ${((Date.now() - t0) / 1000).toFixed(1)} s (${tok.vocabSize} tokens)`);
  return tok;
}

export async function prepareData(cfg: TrainConfig, log: (s: string) => void, tokenizerPath?: string | Tokenizer, options: PrepareOptions = {}): Promise<PreparedData> {
  const { train, validation } = await corpora(cfg, log);
  const tokenizer = await tokenizerFor(cfg, train, log, tokenizerPath);
  const dir = join(cacheDir(), 'tokens');
  mkdirSync(dir, { recursive: true });
  const progress = (what: string) => (p: { documents: number; tokens: number }) => log(`tokenising ${what}: ${p.documents} documents, ${p.tokens} tokens`);
  const workers = defaultTokenizerWorkers();
  const checkpointTokens = Math.min(cfg.data_shard_tokens, 2 ** 24); // a killed run loses at most a shard
  let stopping = false;
  const tokenise = (corpus: Corpus, what: string): TokenCacheBuild => {
    const build = TokenDataset.build(corpus, tokenizer, { cacheDir: dir, onProgress: progress(what), progressEvery: 5000, workers, checkpointTokens });
    build.done.then(
      (built) => {
        if (built.resumedTokens > 0) log(`tokenising ${what}: resumed the partial cache a stopped run left, from token ${built.resumedTokens}`);
        if (built.workersUsed > 0) log(`tokenising ${what}: ${built.workersUsed} worker threads`);
        if (!built.reused && options.overlap) log(`tokenising ${what}: complete, ${built.meta.numTokens} tokens`);
      },
      (err: Error) => {
        if (!stopping && options.overlap) log(`tokenising ${what} failed: ${err.message}`);
      },
    );
    return build;
  };
  const builds = [tokenise(train, 'training data'), tokenise(validation, 'validation data')] as const;
  const stop = async () => {
    stopping = true;
    await Promise.all(builds.map((b) => b.stop()));
  };
  const [trainSet, valSet] = builds.map((b) => b.dataset) as [TokenDataset, TokenDataset];
  try {
    if (options.overlap) {
      // The first shard, and the evaluation sequences (evaluationSequences takes the first ones).
      const first = shardSequences(cfg.data_shard_tokens, cfg.seq_len) * cfg.seq_len;
      await Promise.all([trainSet.waitForTokens(first), valSet.waitForTokens(Math.floor(cfg.eval_tokens / cfg.seq_len) * cfg.seq_len)]);
    } else {
      await Promise.all(builds.map((b) => b.done));
    }
    // A clear error when a complete set is shorter than one sequence (one still growing holds a shard or more).
    for (const set of [trainSet, valSet]) if (set.isComplete) set.numSequences(cfg.seq_len);
  } catch (e) {
    await stop();
    throw e;
  }
  return { tokenizer, train: trainSet, validation: valSet, trainName: train.name, validationName: validation.name, stop };
}

/** The unigram counts come from the first this many training tokens (all of them if fewer). */
export const UNIGRAM_TOKENS = 2 ** 26;

/**
 * Unigram perplexity of `tokens` under add-one-smoothed unigram frequencies of the first
 * UNIGRAM_TOKENS tokens of `train` (waiting for them while they are tokenised): the bar a model must clear.
 */
export async function unigramPerplexity(train: TokenDataset, evalTokens: Int32Array, vocabSize: number): Promise<number> {
  await train.waitForTokens(UNIGRAM_TOKENS);
  const end = Math.min(UNIGRAM_TOKENS, train.tokensAvailable);
  const counts = new Float64Array(vocabSize).fill(1);
  const chunk = 1 << 20;
  let total = vocabSize;
  for (let start = 0; start < end; start += chunk) {
    const ids = train.readTokens(start, Math.min(chunk, end - start));
    for (const id of ids) counts[id]++;
    total += ids.length;
  }
  let nll = 0;
  for (const id of evalTokens) nll -= Math.log(counts[id] / total);
  return Math.exp(nll / evalTokens.length);
}
