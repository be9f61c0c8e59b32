/** Tokenizer training in bounded memory: a capped word table and a bounded, spread sample. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trainByteLevelBpeOnCorpus, tokenizerTrainingMemoryBytes, WordCounter } from '../src/data/bpe-train.ts';
import { corpusFromPieces } from '../src/data/corpus.ts';
import { piecesOf } from '../src/data/pieces.ts';

test('the word table never holds more than maxWords words; frequent words keep their counts', () => {
  const counter = new WordCounter(100);
  for (let i = 0; i < 5000; i++) counter.add(`the cat w${i} sat`);
  assert.ok(counter.counts.size <= 100, `${counter.counts.size} words kept`);
  assert.ok(counter.prunes > 0);
  assert.equal(counter.counts.get('the'), 5000);
  assert.equal(counter.counts.get(' cat'), 5000);
  assert.equal(counter.counts.get(' sat'), 5000);
  assert.throws(() => new WordCounter(1), /maxWords must be an integer >= 2, got 1/);
  assert.ok(tokenizerTrainingMemoryBytes(2e5) > tokenizerTrainingMemoryBytes(1e5));
});

test('training reads a bounded sample spread over the corpus, the same every time', async () => {
  const docs = Array.from({ length: 2000 }, (_, i) => `document ${i} about elections and juries, number ${i % 7}`);
  const size = docs.reduce((s, d) => s + d.length, 0);
  const corpus = corpusFromPieces('docs', 'f', () => piecesOf(docs), size);
  const a = await trainByteLevelBpeOnCorpus(corpus, { vocabSize: 300, maxChars: size / 10 });
  assert.ok(a.sample.rate > 0.09 && a.sample.rate < 0.11);
  assert.ok(a.sample.chars <= size / 10 + 60 && a.sample.chars > size / 20, `${a.sample.chars} characters sampled`);
  assert.ok(a.sample.documents > 100 && a.sample.documents < 250, `${a.sample.documents} documents sampled`);
  const b = await trainByteLevelBpeOnCorpus(corpus, { vocabSize: 300, maxChars: size / 10 });
  assert.deepEqual(b.tokenizer.toJSON(), a.tokenizer.toJSON());
  const whole = await trainByteLevelBpeOnCorpus(corpus, { vocabSize: 300 });
  assert.deepEqual(whole.sample, { documents: 2000, chars: size, rate: 1, distinctWords: whole.sample.distinctWords });
  // A document larger than the budget ends the sample inside it.
  const huge = corpusFromPieces('huge', 'h', () => piecesOf(['word '.repeat(10_000), 'after']), 50_005);
  const h = await trainByteLevelBpeOnCorpus(huge, { vocabSize: 260, maxChars: 1000 });
  assert.ok(h.sample.chars <= 50_000);
});
