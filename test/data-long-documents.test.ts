/**
 * Documents of any size stream through readers and tokenizer in bounded memory (pieces and
 * chunks), with the ids of encoding them whole. Sizes are scaled down by making the piece and
 * chunk sizes small; test/e2e/data-huge-document.test.ts does one real-size run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ByteLevelBpe } from '../src/data/bpe.ts';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { fileCorpus } from '../src/data/corpus.ts';
import { encodeBatch } from '../src/data/encode-batches.ts';
import { readJsonlPieces } from '../src/data/jsonl.ts';
import { piecesOf, tokenizerChunks, whitespaceCut, type TextPiece } from '../src/data/pieces.ts';
import { SentencePieceBpe } from '../src/data/sentencepiece-bpe.ts';
import { readTextPieces } from '../src/data/text-files.ts';
import { buildTokenCache } from '../src/data/token-cache.ts';
import { TokenDataset } from '../src/data/token-dataset.ts';
import { loadTokenizer } from '../src/data/tokenizer-files.ts';
import type { Tokenizer } from '../src/data/tokenizer.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const CORPUS = readFileSync(join(FIXTURES, 'corpus.txt'), 'utf8');

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'relora-long-'));
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The document texts of a piece stream, checking that no piece exceeds `maxChars`. */
async function documentsOf(pieces: AsyncIterable<TextPiece>, maxChars: number): Promise<string[]> {
  const docs: string[] = [];
  let current = '';
  for await (const p of pieces) {
    assert.ok(p.text.length <= maxChars, `a piece of ${p.text.length} characters, limit ${maxChars}`);
    current += p.text;
    if (p.end) {
      docs.push(current);
      current = '';
    }
  }
  return docs;
}

/** Ids of a document encoded in chunks of at most about maxChars, as the token cache does. */
async function chunkedIds(tokenizer: Tokenizer, text: string, maxChars: number, pieceChars = 997): Promise<number[]> {
  async function* pieces(): AsyncGenerator<TextPiece> {
    for (let i = 0; i < text.length; i += pieceChars) yield { text: text.slice(i, i + pieceChars), end: i + pieceChars >= text.length };
    if (text.length === 0) yield { text: '', end: true };
  }
  const cut = tokenizer.safeCut ? tokenizer.safeCut.bind(tokenizer) : whitespaceCut;
  const chunks = await collect(tokenizerChunks(pieces(), cut, maxChars));
  for (const c of chunks) assert.ok(c.text.length <= 4 * maxChars);
  return Array.from(encodeBatch(tokenizer, chunks).ids);
}

/** A long text: the fixture corpus repeated, with odd whitespace and characters mixed in. */
const LONG_TEXT = Array.from({ length: 40 }, (_, i) => CORPUS.replaceAll('\n', i % 3 === 0 ? '\n\n' : ' \u0085 ') + '\uFEFF🎉 中文\t\t<|endoftext|>').join('  ');

test('byte-level BPE: encoding in safe chunks gives exactly the ids of encoding whole', async () => {
  const tok = await loadTokenizer(join(FIXTURES, 'gpt2-style'));
  assert.ok(tok instanceof ByteLevelBpe);
  const whole = tok.encode(LONG_TEXT);
  whole.push(tok.eosId);
  for (const maxChars of [50, 333, 4096]) assert.deepEqual(await chunkedIds(tok, LONG_TEXT, maxChars), whole, `chunks of ${maxChars}`);

  // Words and whitespace alternate, so every 4·maxChars of text offers a cut (else the cut is hard).
  const word = fc.array(fc.constantFrom('a', 'b', '!', "'s", '1', 'é', '🎉', '\uFEFF', '<|endoftext|>'), { minLength: 1, maxLength: 3 }).map((w) => w.join(''));
  const space = fc.array(fc.constantFrom(' ', '\n', '\t', '\u0085', '\u00a0', '\u2028'), { minLength: 1, maxLength: 3 }).map((w) => w.join(''));
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(word, space), { maxLength: 100 }), fc.integer({ min: 12, max: 60 }), async (pairs, maxChars) => {
      const text = pairs.flat().join('');
      assert.deepEqual(await chunkedIds(tok, text, maxChars, 7), [...tok.encode(text), tok.eosId]);
    }),
    { numRuns: 300 },
  );
});

test('SentencePiece-style BPE: same ids as the general implementation, whole and in safe chunks', async () => {
  const fast = await loadTokenizer(join(FIXTURES, 'llama2-style'));
  const general = await loadTokenizer(join(FIXTURES, 'llama2-style'), 'huggingface');
  assert.ok(fast instanceof SentencePieceBpe);
  const long = LONG_TEXT.slice(0, 50_000).replaceAll('<|endoftext|>', '</s>');
  const whole = general.encode(long);
  assert.deepEqual(fast.encode(long), whole);
  for (const maxChars of [40, 1000]) assert.deepEqual(await chunkedIds(fast, long, maxChars), [...whole, fast.eosId], `chunks of ${maxChars}`);
  const word = fc.array(fc.constantFrom('a', 'the', 'jury', '\u2581', 'é', '🎉', '\u0085', '</s>', '<s>', '\n', 'ǂ', '\uFEFF'), { minLength: 1, maxLength: 3 }).map((w) => w.join(''));
  const space = fc.constantFrom(' ', '  ', '\t', ' \n ');
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(word, space), { maxLength: 60 }), fc.integer({ min: 12, max: 60 }), async (pairs, maxChars) => {
      const text = pairs.flat().join('');
      const ids = general.encode(text);
      assert.deepEqual(fast.encode(text), ids);
      assert.deepEqual(await chunkedIds(fast, text, maxChars, 7), [...ids, fast.eosId]);
    }),
    { numRuns: 300 },
  );
});

test('a cut never falls inside an added token that holds whitespace', async () => {
  const json = JSON.parse(readFileSync(join(FIXTURES, 'gpt2-style', 'tokenizer.json'), 'utf8'));
  json.added_tokens.push({ id: 401, content: 'two  words', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tok = new ByteLevelBpe({
    vocab: json.model.vocab,
    merges: json.model.merges.map((m: string[] | string) => (Array.isArray(m) ? m : m.split(' '))),
    addedTokens: json.added_tokens.map((t: { id: number; content: string }) => ({ id: t.id, content: t.content, special: true })),
    eosId: 400,
  });
  const text = 'xx two  words '.repeat(50);
  assert.equal(tok.safeCut('xx two  words', 9), 2, 'not at 6 (inside the added token)');
  assert.deepEqual(await chunkedIds(tok, text, 9), [...tok.encode(text), tok.eosId]);
});

test('JSONL: a line longer than one part streams its text in pieces, escapes and all', async () => {
  const dir = tempDir();
  const path = join(dir, 'long.jsonl');
  const text = `${LONG_TEXT.slice(0, 20_000)} "quoted" back\\slash / é 🎉 \u0001 \u2028 end`;
  const before = { id: 7, meta: { nested: ['}', '{"text": "decoy"}', { deep: [1, 2, null] }] }, flag: true, n: -1.5e3 };
  const lines = [
    JSON.stringify({ text: 'short one' }),
    `{"id": 7, "meta": ${JSON.stringify(before.meta)}, "flag": true, "n": -1.5e3, "text": ${JSON.stringify(text)}, "after": "x}"}`,
    `\t{ "text" : ${JSON.stringify(text).replaceAll('é', '\\u00e9').replaceAll('🎉', '\\ud83c\\udf89')} }  `,
    JSON.stringify({ text: null, id: 3 }),
    `{"text": null, "pad": "${'p'.repeat(9000)}"}`,
    JSON.stringify({ text: 'last' }),
  ];
  writeFileSync(path, lines.join('\n'));
  const notes: string[] = [];
  // A part of a line holds up to twice maxPieceBytes (the rest of one read and the next read).
  const docs = await documentsOf(readJsonlPieces(path, 'text', { maxPieceBytes: 1024, onNote: (n) => notes.push(n) }), 2 * 1024);
  assert.deepEqual(docs, ['short one', text, text, 'last']);
  assert.deepEqual(notes, [`${path}: skipped 2 records whose "text" is null`]);

  // Errors in long lines name the line, like those in short ones.
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, `{"text": "ok"}\n{"title": "${'t'.repeat(5000)}"}\n`);
  await assert.rejects(collect(readJsonlPieces(bad, 'text', { maxPieceBytes: 1024 })), { message: `${bad}: line 2 has no field "text" (fields: title)` });
  writeFileSync(bad, `{"text": "ok"}\n{"text": ${'1'.repeat(5000)}}\n`);
  await assert.rejects(collect(readJsonlPieces(bad, 'text', { maxPieceBytes: 1024 })), /bad\.jsonl: line 2 has a non-string field "text" \(a number\)/);
  writeFileSync(bad, `{"text": "ok"}\n{"text": "${'a'.repeat(5000)}\n`);
  await assert.rejects(collect(readJsonlPieces(bad, 'text', { maxPieceBytes: 1024 })), /bad\.jsonl: line 2 is not valid JSON \(the line ends inside the JSON object/);
  writeFileSync(bad, Buffer.concat([Buffer.from(`{"text": "${'a'.repeat(3000)}`), Buffer.from([0xff]), Buffer.from('"}\n')]));
  await assert.rejects(collect(readJsonlPieces(bad, 'text', { maxPieceBytes: 1024 })), /bad\.jsonl: line 1 is not valid JSON \(text that is not valid UTF-8\)/);
});

test('JSONL and Parquet: one rule for null texts — skipped and counted', async () => {
  const dir = tempDir();
  const path = join(dir, 'nulls.jsonl');
  writeFileSync(path, '{"text": "a"}\n{"text": null}\n{"text": "b"}\n');
  const notes: string[] = [];
  const corpus = await fileCorpus([path, join(FIXTURES, 'docs.parquet')], { onNote: (n) => notes.push(n) });
  const docs = await collect(corpus.documents());
  assert.deepEqual(docs.slice(0, 2), ['a', 'b']);
  assert.equal(docs.length, 6);
  assert.deepEqual(notes, [`${path}: skipped 1 record whose "text" is null`, `${join(FIXTURES, 'docs.parquet')}: skipped 1 record whose "text" is null`]);
});

test('txt: a whole file and a long paragraph stream in pieces', async () => {
  const dir = tempDir();
  const path = join(dir, 'big.txt');
  const body = `\uFEFF${LONG_TEXT.slice(0, 30_000)}\r\n\r\n${'x'.repeat(5000)}\r\nsecond line\n\n\nlast`;
  writeFileSync(path, body);
  assert.deepEqual(await documentsOf(readTextPieces(path, 'file', { maxPieceBytes: 1000 }), 1000 + 1), [body.slice(1)]);
  const paragraphs = await documentsOf(readTextPieces(path, 'blank-line', { maxPieceBytes: 1000 }), 4 * 1000);
  const expected = body.slice(1).split(/\r?\n/).join('\n').split(/\n\s*\n/).map((p) => p.replace(/^\n+|\n+$/g, '')).filter((p) => p.trim().length > 0);
  assert.deepEqual(paragraphs, expected);
  // An invalid byte far into a file streamed in pieces still names its line.
  const bad = join(dir, 'bad.txt');
  writeFileSync(bad, Buffer.concat([Buffer.from('ok\n'.repeat(2000)), Buffer.from([0xc3, 0x28])]));
  await assert.rejects(collect(readTextPieces(bad, 'file', { maxPieceBytes: 1000 })), { message: `${bad}: line 2001 is not valid UTF-8` });
});

test('token cache: a huge one-line document is cached with the ids of encoding it whole', async () => {
  const dir = tempDir();
  const tok = await trainByteLevelBpe([CORPUS], { vocabSize: 400 });
  const text = LONG_TEXT.slice(0, 60_000);
  const jsonl = join(dir, 'one.jsonl');
  writeFileSync(jsonl, `${JSON.stringify({ text })}\n${JSON.stringify({ text: 'tail' })}\n`);
  const corpus = await fileCorpus([jsonl], { maxPieceBytes: 2048 });
  const { metaPath, meta } = await buildTokenCache(corpus, tok, { cacheDir: join(dir, 'cache'), maxChunkChars: 500 });
  const expected = [...tok.encode(text), tok.eosId, ...tok.encode('tail'), tok.eosId];
  assert.equal(meta.numDocuments, 2);
  const ds = TokenDataset.open(metaPath);
  assert.deepEqual(Array.from(ds.readTokens(0, ds.numTokens)), expected);
  ds.close();
  // documents() refuses, by name, a document it would have to hold whole beyond its limit.
  const { joinPieces } = await import('../src/data/pieces.ts');
  await assert.rejects(collect(joinPieces(piecesOf(['ok', 'x'.repeat(101)]), 'c.jsonl', 100)), /c\.jsonl: document 2 is longer than 100 characters/);
});
