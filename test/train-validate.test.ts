/**
 * Every input of a run is checked before any work: an imported model's config.json and the
 * memory its real shape needs (its weights unread), the tokenizer file, the vocabulary and the
 * sequence length. A run refused there — or one whose data fails while tokenising — leaves no run
 * folder behind, so the same --out works once the input is fixed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { saveTokenizer } from '../src/data/tokenizer-files.ts';
import { resolveConfig, type TrainConfigInput } from '../src/train/config.ts';
import { ResourceError } from '../src/train/memory.ts';
import { train } from '../src/train/trainer.ts';
import { runCli, tempDir, writeCorpus } from './fixtures/reliability/harness.ts';

const work = tempDir('validate');
let corpus = '';
let tokenizerFile = '';
let tokenizerVocab = 0;
/** A Hugging Face folder with config.json and tokenizer.json only: its weights must never be needed. */
let hfConfig: Record<string, unknown> = {};

before(async () => {
  corpus = writeCorpus(work);
  const docs = readFileSync(corpus, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text);
  const tokenizer = await trainByteLevelBpe(docs, { vocabSize: 300 });
  tokenizerVocab = tokenizer.vocabSize;
  tokenizerFile = join(work, 'tokenizer.json');
  await saveTokenizer(tokenizer, tokenizerFile);
  hfConfig = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_attention_heads: 4,
    num_key_value_heads: 2, num_hidden_layers: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6, vocab_size: tokenizerVocab, torch_dtype: 'float32',
  };
});

/** A folder holding only config.json (with `changes`) and the tokenizer. */
function hfFolder(name: string, changes: Record<string, unknown>): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...hfConfig, ...changes }));
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(tokenizerFile));
  return dir;
}

/**
 * Trains `raw` in a fresh run folder with a fresh token cache; expects a refusal matching
 * `message`, and checks that nothing was tokenised and no run folder was left.
 */
async function assertRefusedUpFront(name: string, raw: TrainConfigInput, message: RegExp, opts: { memoryLimitBytes?: number } = {}): Promise<Error> {
  const cache = join(work, `cache-${name}`);
  const runDir = join(work, `run-${name}`);
  process.env.RELORA_CACHE_DIR = cache;
  const cfg = resolveConfig({ data: [corpus], seq_len: 16, micro_batch: 2, steps: 4, mode: 'full', eval_tokens: 64, rank_sample: 'none', ...raw });
  let error: Error | null = null;
  await train({ config: cfg, runDir, log: () => {}, ...opts }).catch((e: Error) => { error = e; });
  assert.ok(error, `${name}: expected a refusal`);
  const e = error as Error;
  assert.match(e.message, message, name);
  assert.ok(!existsSync(join(cache, 'tokens')), `${name}: refused before tokenising`);
  assert.ok(!existsSync(runDir), `${name}: no run folder is left`);
  return e;
}

test('an imported config.json with an absurd size is refused by file and field before any data is read', async () => {
  const dir = hfFolder('hf-layers', { num_hidden_layers: 100000 });
  await assertRefusedUpFront('layers', { init_from: dir }, new RegExp(`${join(dir, 'config.json')}.*num_hidden_layers`));
});

test('the memory estimate runs on the imported shape, before its weights are read', async () => {
  // No weights in the folder: reading them would fail with another error.
  const dir = hfFolder('hf-big', { hidden_size: 1024, intermediate_size: 2816, num_attention_heads: 16, num_key_value_heads: 16, num_hidden_layers: 64 });
  const e = await assertRefusedUpFront('memory', { init_from: dir }, /needs an estimated/, { memoryLimitBytes: 1024 * 2 ** 20 });
  assert.ok(e instanceof ResourceError);
  assert.match(e.message, new RegExp(`continuing ${join(dir, 'config.json')} \\(num_hidden_layers 64, hidden_size 1024`));
});

test('a sequence length above the imported model\'s positions, and a missing tokenizer, are refused up front', async () => {
  const dir = hfFolder('hf-short', { max_position_embeddings: 8 });
  await assertRefusedUpFront('positions', { init_from: dir }, new RegExp(`seq_len 16 exceeds max_position_embeddings 8 of ${join(dir, 'config.json')}`));
  await assertRefusedUpFront('tokenizer', { tokenizer: join(work, 'missing', 'tokenizer.json') }, /tokenizer .*missing.*: no such file or folder/);
});

test('a vocabulary smaller than the tokenizer\'s is refused up front, for a given and for a trained tokenizer', async () => {
  await assertRefusedUpFront('vocab-file', { tokenizer: tokenizerFile, vocab_size: 100 }, new RegExp(`vocab_size 100, smaller than the vocabulary of ${tokenizerFile} \\(${tokenizerVocab}\\)`));
  await assertRefusedUpFront('vocab-trained', { tokenizer_vocab_size: 400, vocab_size: 300 }, /vocab_size 300 is smaller than tokenizer_vocab_size 400/);
  const dir = hfFolder('hf-vocab', { vocab_size: 100 });
  await assertRefusedUpFront('vocab-imported', { init_from: dir }, new RegExp(`${join(dir, 'config.json')} has vocab_size 100, smaller than the vocabulary`));
});

test('--seq-len 1 and --model with a bad field are refused with the field named, and leave no folder', async () => {
  const out = join(work, 'cli-seq');
  const env = { RELORA_CACHE_DIR: join(work, 'cache-cli') };
  const r = await runCli(['train', '--data', corpus, '--out', out, '--seq-len', '1'], env);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /seq_len: .*>=2 \(got 1\)/);
  const m = await runCli(['train', '--data', corpus, '--out', out, '--model', '{"hidden_size":0}'], env);
  assert.equal(m.code, 2, m.stderr);
  assert.match(m.stderr, /model\.hidden_size: .*>0 \(got 0\)/);
  assert.match(m.stderr, /model\.num_layers: missing; expected number/);
  assert.doesNotMatch(m.stderr, /Invalid input/);
  assert.ok(!existsSync(out));
});

test('a run whose data fails while tokenising leaves no run folder, and the same --out then works', async () => {
  process.env.RELORA_CACHE_DIR = join(work, 'cache-data');
  const bad = join(work, 'bad.jsonl');
  writeFileSync(bad, `${readFileSync(corpus, 'utf8')}{"text": \n`);
  const runDir = join(work, 'run-data');
  const raw = { seq_len: 16, micro_batch: 2, steps: 2, mode: 'full', eval_tokens: 64, rank_sample: 'none', tokenizer: tokenizerFile };
  await assert.rejects(train({ config: resolveConfig({ ...raw, data: [bad] }), runDir, log: () => {} }), /bad\.jsonl/);
  assert.ok(!existsSync(runDir), 'no half-made run folder');
  const summary = await train({ config: resolveConfig({ ...raw, data: [corpus] }), runDir, log: () => {} });
  assert.equal(summary.steps, 2);
});
