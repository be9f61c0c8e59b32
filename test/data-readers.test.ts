import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileCorpus } from '../src/data/corpus.ts';
import { readJsonlFile } from '../src/data/jsonl.ts';
import { readLines } from '../src/data/lines.ts';
import { parquetColumns, readParquetFile } from '../src/data/parquet.ts';
import { resolveDataFiles } from '../src/data/sources.ts';
import { readTextFile } from '../src/data/text-files.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const PARQUET_TEXTS = ['First document.', 'Zweites Dokument: Über café 🎉', 'Third one\nhas two lines.', 'Fourth.'];

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'relora-data-'));
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const d of it) out.push(d);
  return out;
}

test('txt: a file is one document, or documents are separated by blank lines', async () => {
  const dir = tempDir();
  const path = join(dir, 'a.txt');
  writeFileSync(path, '\uFEFFFirst para\nline two\r\n\r\n  \nSecond para 🎉\n\n\n');
  assert.deepEqual(await collect(readTextFile(path)), ['\uFEFFFirst para\nline two\r\n\r\n  \nSecond para 🎉\n\n\n'.slice(1)]);
  assert.deepEqual(await collect(readTextFile(path, 'blank-line')), ['First para\nline two', 'Second para 🎉']);
});

test('lines: split across read chunks, CRLF, no final newline', async () => {
  const dir = tempDir();
  const path = join(dir, 'big.txt');
  const lines = Array.from({ length: 3000 }, (_, i) => `line ${i} ${'é'.repeat(i % 700)}`);
  writeFileSync(path, lines.join('\r\n')); // > 1 MiB, so lines straddle stream chunks
  const got: string[] = [];
  for await (const l of readLines(path)) {
    assert.equal(l.number, got.length + 1);
    got.push(l.text);
  }
  assert.deepEqual(got, lines);
});

test('jsonl: reads the configured field, skips blank lines and empty texts', async () => {
  const dir = tempDir();
  const path = join(dir, 'd.jsonl');
  writeFileSync(path, '{"text": "one", "id": 1}\n\n{"text": "two\\nlines ✓"}\n{"text": ""}\n{"body": "x", "text": "three"}\n');
  assert.deepEqual(await collect(readJsonlFile(path)), ['one', 'two\nlines ✓', 'three']);
  const other = join(dir, 'o.jsonl');
  writeFileSync(other, '{"content": "alpha"}\n{"content": "beta"}');
  assert.deepEqual(await collect(readJsonlFile(other, 'content')), ['alpha', 'beta']);
});

test('jsonl errors name the file and the 1-based line', async () => {
  const dir = tempDir();
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"text": "ok"}\n{"text": "fine"}\n{not json}\n');
  await assert.rejects(collect(readJsonlFile(bad)), (e: Error) => e.message.startsWith(`${bad}: line 3 is not valid JSON`));
  const missing = join(dir, 'missing.jsonl');
  writeFileSync(missing, '{"text": "ok"}\n{"title": "t", "body": "b"}\n');
  await assert.rejects(collect(readJsonlFile(missing)), {
    message: `${missing}: line 2 has no field "text" (fields: title, body)`,
  });
  const notString = join(dir, 'num.jsonl');
  writeFileSync(notString, '{"text": 5}\n');
  await assert.rejects(collect(readJsonlFile(notString)), /num\.jsonl: line 1 has a non-string field "text"/);
  const array = join(dir, 'arr.jsonl');
  writeFileSync(array, '["text"]\n');
  await assert.rejects(collect(readJsonlFile(array)), /arr\.jsonl: line 1 is not a JSON object/);
});

test('invalid UTF-8 is an error naming file and line, in every reader', async () => {
  const dir = tempDir();
  const bytes = Buffer.concat([Buffer.from('good line\nsecond\nbad '), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]);
  const txt = join(dir, 'bad.txt');
  writeFileSync(txt, bytes);
  await assert.rejects(collect(readTextFile(txt)), { message: `${txt}: line 3 is not valid UTF-8` });
  await assert.rejects(collect(readTextFile(txt, 'blank-line')), { message: `${txt}: line 3 is not valid UTF-8` });
  const jsonl = join(dir, 'bad.jsonl');
  writeFileSync(jsonl, Buffer.concat([Buffer.from('{"text": "a"}\n{"text": "'), Buffer.from([0xff]), Buffer.from('"}\n')]));
  await assert.rejects(collect(readJsonlFile(jsonl)), { message: `${jsonl}: line 2 is not valid UTF-8` });
  const parquet = join(FIXTURES, 'invalid-utf8.parquet');
  await assert.rejects(collect(readParquetFile(parquet)), (e: Error) => e.message.startsWith(`${parquet}: row group 0`) && /UTF-8/.test(e.message));
});

test('empty data is an error naming the file', async () => {
  const dir = tempDir();
  const empty = join(dir, 'empty.txt');
  writeFileSync(empty, ' \n\t\n');
  await assert.rejects(collect(readTextFile(empty)), { message: `${empty}: the file holds no text (empty or only whitespace)` });
  await assert.rejects(collect(readTextFile(empty, 'blank-line')), { message: `${empty}: the file holds no text (empty or only whitespace)` });
  const jsonl = join(dir, 'empty.jsonl');
  writeFileSync(jsonl, '\n{"text": ""}\n');
  await assert.rejects(collect(readJsonlFile(jsonl)), { message: `${jsonl}: no documents (no non-empty "text" values)` });
  const parquet = join(FIXTURES, 'empty.parquet');
  await assert.rejects(collect(readParquetFile(parquet)), { message: `${parquet}: no documents (column "text" has no non-empty text)` });
});

test('parquet: reads one column row group by row group (snappy and zstd), skipping nulls', async () => {
  assert.deepEqual(await collect(readParquetFile(join(FIXTURES, 'docs.parquet'))), PARQUET_TEXTS);
  assert.deepEqual(await collect(readParquetFile(join(FIXTURES, 'docs-zstd.parquet'))), PARQUET_TEXTS);
  assert.deepEqual(await parquetColumns(join(FIXTURES, 'docs.parquet')), ['id', 'text']);
});

test('parquet: a missing column lists the available ones; a non-parquet file is named', async () => {
  const path = join(FIXTURES, 'docs.parquet');
  await assert.rejects(collect(readParquetFile(path, 'content')), { message: `${path}: no column "content" (columns: id, text)` });
  await assert.rejects(collect(readParquetFile(path, 'id')), /docs\.parquet: row 0, column "id" holds bigint, expected text/);
  const dir = tempDir();
  const fake = join(dir, 'fake.parquet');
  writeFileSync(fake, 'this is not parquet at all');
  await assert.rejects(collect(readParquetFile(fake)), (e: Error) => e.message.startsWith(`${fake}: not a readable Parquet file`));
});

function makeTree(): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'b', 'deep'), { recursive: true });
  mkdirSync(join(dir, '.git'));
  writeFileSync(join(dir, 'b', 'deep', 'z.txt'), 'deep z');
  writeFileSync(join(dir, 'b', 'a.jsonl'), '{"text": "b/a"}\n');
  writeFileSync(join(dir, 'a.txt'), 'top a');
  writeFileSync(join(dir, 'notes.md'), 'ignored: not a data file');
  writeFileSync(join(dir, '.git', 'x.txt'), 'hidden');
  return dir;
}

test('sources: folders are recursive and sorted; globs; duplicates once', async () => {
  const dir = makeTree();
  const expected = [join(dir, 'a.txt'), join(dir, 'b', 'a.jsonl'), join(dir, 'b', 'deep', 'z.txt')];
  assert.deepEqual(await resolveDataFiles([dir]), expected);
  assert.deepEqual(await resolveDataFiles(['**/*.txt'], dir), [join(dir, 'a.txt'), join(dir, 'b', 'deep', 'z.txt')]);
  assert.deepEqual(await resolveDataFiles(['b/a.jsonl', '.'], dir), [join(dir, 'b', 'a.jsonl'), join(dir, 'a.txt'), join(dir, 'b', 'deep', 'z.txt')]);
  const corpus = await fileCorpus([dir]);
  assert.deepEqual(await collect(corpus.documents()), ['top a', 'b/a', 'deep z']);
  assert.deepEqual(await collect(corpus.documents()), ['top a', 'b/a', 'deep z'], 'a corpus can be read again');
});

test('sources: missing files, empty matches and unknown types are errors naming the source', async () => {
  const dir = makeTree();
  await assert.rejects(resolveDataFiles(['nope.txt'], dir), { message: `data source nope.txt: no such file or folder (${join(dir, 'nope.txt')})` });
  await assert.rejects(resolveDataFiles(['**/*.parquet'], dir), { message: 'data source **/*.parquet: no data files matched the pattern' });
  await assert.rejects(resolveDataFiles(['notes.md'], dir), /data source notes\.md: unsupported file type \(expected \.txt, \.text, \.jsonl, \.ndjson, \.parquet\)/);
  mkdirSync(join(dir, 'void'));
  await assert.rejects(resolveDataFiles(['void'], dir), /data source void: folder holds no data files/);
  await assert.rejects(resolveDataFiles([], dir), /data sources: none given/);
});

test('corpus fingerprint follows file size, mtime and read options', async () => {
  const dir = makeTree();
  const a = await fileCorpus([dir]);
  assert.equal((await fileCorpus([dir])).fingerprint, a.fingerprint);
  assert.notEqual((await fileCorpus([dir], { textField: 'body' })).fingerprint, a.fingerprint);
  assert.notEqual((await fileCorpus([dir], { txtMode: 'blank-line' })).fingerprint, a.fingerprint);
  utimesSync(join(dir, 'a.txt'), new Date(2001, 1, 1), new Date(2001, 1, 1));
  assert.notEqual((await fileCorpus([dir])).fingerprint, a.fingerprint);
});

test('file corpus mixes formats and passes the text field to jsonl and parquet', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'x.jsonl'), '{"body": "from jsonl"}\n');
  const corpus = await fileCorpus([join(dir, 'x.jsonl'), join(FIXTURES, 'docs.parquet')], { textField: 'body' });
  await assert.rejects(collect(corpus.documents()), /docs\.parquet: no column "body" \(columns: id, text\)/);
  const ok = await fileCorpus([join(FIXTURES, 'docs.parquet'), join(FIXTURES, 'corpus.txt')]);
  const docs = await collect(ok.documents());
  assert.deepEqual(docs.slice(0, 4), PARQUET_TEXTS);
  assert.equal(docs.length, 5);
});
