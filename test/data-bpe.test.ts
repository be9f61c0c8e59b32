import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BYTE_TO_UNICODE, bytesToSymbols, forEachPretoken, pretokenize, symbolsToBytes } from '../src/data/byte-level.ts';
import { ByteLevelBpe } from '../src/data/bpe.ts';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { HfTokenizer } from '../src/data/hf-tokenizer.ts';
import { SentencePieceBpe } from '../src/data/sentencepiece-bpe.ts';
import { loadTokenizer, saveTokenizer, tokenizerFromJSON } from '../src/data/tokenizer-files.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const CORPUS_LINES = readFileSync(join(FIXTURES, 'corpus.txt'), 'utf8').split('\n').filter((l) => l.length > 0);

interface Expected {
  vocab_size: number;
  eos_id: number;
  probes: Array<{ text: string; ids: number[]; decoded: string }>;
}
/** Ids and decoded text from the Python `tokenizers` library (make_fixtures.py). */
const EXPECTED_FILE = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as Record<string, unknown>;
const EXPECTED = EXPECTED_FILE as Record<string, Expected>;
/** The Rust ByteLevel pre-tokenizer's pieces of the same probes. */
const EXPECTED_PRETOKENS = EXPECTED_FILE.byte_level_pretokens as Array<{ text: string; pieces: string[] }>;

const ROUND_TRIP = [
  '',
  'Hello, world!',
  'Ünïcödé façade — “quotes” ‘single’ ß ∑ π',
  'emoji 🎉👩‍👩‍👧 flags 🇩🇪 skin 👍🏽',
  '中文文本和日本語のテキスト',
  '   leading spaces, trailing spaces   ',
  'tabs\tand\t\ttabs',
  'newlines\n\n\nand\r\nCRLF\n',
  "it's don't we'll I'd they've",
  'numbers 12345 3.14159 1,000,000',
  '<|endoftext|> between <|endoftext|><|endoftext|>',
  '\u0000\u0001 control \u007f chars \uFEFF',
];

test('byte-level mapping covers all 256 bytes with printable, distinct characters', () => {
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
  assert.equal(BYTE_TO_UNICODE[32], 'Ġ');
  assert.equal(BYTE_TO_UNICODE[10], 'Ċ');
  assert.equal(BYTE_TO_UNICODE[65], 'A');
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(symbolsToBytes(bytesToSymbols(all)), all);
  assert.throws(() => symbolsToBytes('a b'), /character " " stands for no byte/);
});

test('GPT-2 pre-tokenisation', () => {
  assert.deepEqual(pretokenize("Hello world, it's  2024!\n\n ok"), ['Hello', ' world', ',', ' it', "'s", ' ', ' 2024', '!', '\n\n', ' ok']);
  assert.deepEqual(pretokenize(''), []);
});

test('GPT-2 pre-tokenisation splits whitespace as the Rust tokenizers do (U+FEFF, U+0085, U+2028, …)', () => {
  assert.ok(EXPECTED_PRETOKENS.some((p) => p.text.includes('\uFEFF')) && EXPECTED_PRETOKENS.some((p) => p.text.includes('\u0085')));
  for (const { text, pieces } of EXPECTED_PRETOKENS) assert.deepEqual(pretokenize(text), pieces, JSON.stringify(text));
});

test('the hand-written ASCII pre-tokeniser cuts every text exactly as the GPT-2 regex does', () => {
  // Random texts over characters that exercise every alternative and every hand-off to the
  // regex: contractions, runs of each class, lone and doubled spaces and newlines, non-ASCII
  // letters, digits, whitespace and symbols right at run boundaries.
  const alphabet = [..."aZ0 9'srevlldmt.,!(\n\t\r\u000b_-"].concat(['é', 'ß', '٣', '\u00a0', '\u0085', '\u2028', '\ufeff', '€', '😀', "'S", ' ', ' ', 'e', 's']);
  let x = 12345;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 4294967296;
  for (let t = 0; t < 3000; t++) {
    let text = '';
    for (let i = 0, n = 1 + Math.floor(next() * 40); i < n; i++) text += alphabet[Math.floor(next() * alphabet.length)];
    const words: string[] = [];
    forEachPretoken(text, (w) => words.push(w));
    assert.deepEqual(words, pretokenize(text), JSON.stringify(text));
  }
});

test('training on a tiny corpus gives the hand-derived merges', async () => {
  // "aaab": pairs aa×2, ab×1 -> merge a+a; word is [aa, a, b]; (aa,a) and (a,b) tie at 1 and the
  // smaller ids win ('a' < 'aa'), so a+b; then aa+ab.
  const tok = await trainByteLevelBpe(['aaab'], { vocabSize: 260, minFrequency: 1 });
  const json = tok.toJSON() as { model: { merges: string[]; vocab: Record<string, number> } };
  assert.deepEqual(json.model.merges, ['a a', 'a b', 'aa ab']);
  assert.equal(tok.vocabSize, 260);
  assert.deepEqual([json.model.vocab['aa'], json.model.vocab['ab'], json.model.vocab['aaab']], [257, 258, 259]);
  assert.equal(json.model.vocab['<|endoftext|>'], 0);
  assert.deepEqual(tok.encode('aaab'), [259]);
  assert.deepEqual(tok.encode('aaaa'), [257, 257]);
  assert.deepEqual(tok.encode('baaa'), [json.model.vocab['b'], 257, json.model.vocab['a']]);

  // Counts are weighted by word frequency: " ab" twice and "ab" once beat everything else;
  // with the default minFrequency of 2, training stops once no pair occurs twice.
  const weighted = await trainByteLevelBpe(['ab ab ab cd'], { vocabSize: 300 });
  assert.deepEqual((weighted.toJSON() as { model: { merges: string[] } }).model.merges, ['a b', 'Ġ ab']);
  assert.equal(weighted.vocabSize, 259);
});

test('trainer matches the Hugging Face BPE trainer merge for merge', async () => {
  // byte-level-bpe/tokenizer.json was trained by Python `tokenizers` on corpus.txt (EOS special,
  // full byte alphabet, min_frequency 2, vocab 420); ties are frequent on so little text.
  const reference = JSON.parse(readFileSync(join(FIXTURES, 'byte-level-bpe', 'tokenizer.json'), 'utf8'));
  const ours = (await trainByteLevelBpe(CORPUS_LINES, { vocabSize: 420 })).toJSON() as typeof reference;
  const refMerges = (reference.model.merges as Array<string | string[]>).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  assert.deepEqual(ours.model.merges, refMerges);
  assert.deepEqual(ours.model.vocab, reference.model.vocab);
});

test('encoding agrees with Python tokenizers on its own files, both implementations', async () => {
  for (const name of ['byte-level-bpe', 'gpt2-style', 'llama-style', 'llama2-style', 't5-style']) {
    const expected = EXPECTED[name]!;
    for (const implementation of ['auto', 'huggingface'] as const) {
      const tok = await loadTokenizer(join(FIXTURES, name), implementation);
      const label = `${name} (${tok.constructor.name})`;
      assert.equal(tok.vocabSize, expected.vocab_size, label);
      assert.equal(tok.eosId, expected.eos_id, label);
      for (const probe of expected.probes) {
        assert.deepEqual(tok.encode(probe.text), probe.ids, `${label} encode ${JSON.stringify(probe.text)}`);
        assert.equal(tok.decode(probe.ids), probe.decoded, `${label} decode ${JSON.stringify(probe.text)}`);
      }
    }
  }
  // The fast path is taken exactly for byte-level BPE files.
  assert.ok((await loadTokenizer(join(FIXTURES, 'gpt2-style'))) instanceof ByteLevelBpe);
  assert.ok((await loadTokenizer(join(FIXTURES, 'llama-style'))) instanceof HfTokenizer, 'tokens such as "y▁" rule out word splitting');
  assert.ok((await loadTokenizer(join(FIXTURES, 'llama2-style'))) instanceof SentencePieceBpe);
  assert.ok((await loadTokenizer(join(FIXTURES, 't5-style', 'tokenizer.json'))) instanceof HfTokenizer);
});

test('round trip decode(encode(s)) == s, and save/load keeps the ids', async () => {
  const tok = await trainByteLevelBpe([...CORPUS_LINES, ...ROUND_TRIP], { vocabSize: 500 });
  const dir = mkdtempSync(join(tmpdir(), 'relora-bpe-'));
  const path = join(dir, 'tokenizer.json');
  await saveTokenizer(tok, path);
  const loaded = await loadTokenizer(path);
  const viaHf = await loadTokenizer(path, 'huggingface');
  assert.equal(loaded.eosId, 0);
  for (const s of ROUND_TRIP) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s, JSON.stringify(s));
    assert.deepEqual(loaded.encode(s), ids, JSON.stringify(s));
    assert.deepEqual(viaHf.encode(s), ids, JSON.stringify(s));
  }
  assert.deepEqual(tok.encode(''), []);
  assert.deepEqual(tok.encode('<|endoftext|>'), [0]);
  assert.equal(tok.decode([0]), '<|endoftext|>');
  // A cut through a multi-byte character decodes to U+FFFD rather than failing.
  const emoji = tok.encode('🎉');
  assert.ok(emoji.length > 1);
  assert.equal(tok.decode(emoji.slice(0, 1)), '\uFFFD');
  assert.throws(() => tok.decode([tok.vocabSize]), { message: `BPE decode: token id ${tok.vocabSize} is not in the vocabulary (size ${tok.vocabSize})` });
});

test('long words without spaces encode correctly (heap-based merging)', async () => {
  const tok = await trainByteLevelBpe(CORPUS_LINES, { vocabSize: 420 });
  const reference = await loadTokenizer(join(FIXTURES, 'byte-level-bpe'), 'huggingface');
  const long = 'theelectionjurysaidthat'.repeat(200) + 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
  assert.deepEqual(tok.encode(long), reference.encode(long));
  assert.equal(tok.decode(tok.encode(long)), long);
});

test('bad tokenizer files are errors naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-bpe-'));
  await assert.rejects(loadTokenizer(join(dir, 'none.json')), /tokenizer .*none\.json: no such file or folder/);
  await assert.rejects(loadTokenizer(dir), /folder has no tokenizer\.json/);
  const noEos = JSON.parse(readFileSync(join(FIXTURES, 'gpt2-style', 'tokenizer.json'), 'utf8'));
  noEos.added_tokens = [];
  delete noEos.model.vocab['<|endoftext|>'];
  assert.throws(() => tokenizerFromJSON(noEos, {}, { describe: 'x/tokenizer.json' }), /x\/tokenizer\.json: no end-of-sequence token found/);
  assert.throws(() => tokenizerFromJSON(noEos, { eos_token: '</s>' }, { describe: 'x/tokenizer.json' }), /eos_token "<\/s>" of tokenizer_config\.json is not in the vocabulary/);
  await assert.rejects(trainByteLevelBpe([], { vocabSize: 100 }), /vocabSize must be an integer in \[257, \d+\] \(EOS \+ 256 bytes \+ merges\), got 100/);
});
