/**
 * Real-size check of documents too large for one JavaScript string (V8 strings stop at 2^29 - 24
 * characters): a 550 MB one-line JSONL document and a 600 MB .txt file are tokenised into the
 * token cache in bounded memory. Slow (minutes, about 1.2 GB of disk): run by `npm run test:e2e`.
 * The unit tests check the same paths at small sizes (test/data-long-documents.test.ts).
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { trainByteLevelBpe } from '../../src/data/bpe-train.ts';
import { fileCorpus } from '../../src/data/corpus.ts';
import { buildTokenCache } from '../../src/data/token-cache.ts';
import { TokenDataset } from '../../src/data/token-dataset.ts';

const MB = 1_000_000;
const LINES = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'data', 'corpus.txt'), 'utf8').split('\n').filter((l) => l.length > 0);
/** About 1 MB of text with no control character, quote or backslash (JSON-safe), repeated to build the huge document. */
const BLOCK = Array.from({ length: 1 + Math.ceil(MB / LINES.join(' ').length) }, () => LINES.join(' '))
  .join(' ')
  .replace(/["\\\t\r\f\v]/g, ' ')
  .slice(0, MB - 1) + ' ';

function writeRepeated(path: string, head: string, blocks: number, tail: string): void {
  const fd = openSync(path, 'w');
  writeSync(fd, head);
  const block = Buffer.from(BLOCK);
  for (let i = 0; i < blocks; i++) writeSync(fd, block);
  writeSync(fd, tail);
  closeSync(fd);
}

test('a 550 MB JSONL line and a 600 MB .txt document stream through the token cache', { timeout: 30 * 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-huge-'));
  try {
    const tok = await trainByteLevelBpe(LINES, { vocabSize: 600 });
    const jsonl = join(dir, 'huge.jsonl');
    writeRepeated(jsonl, '{"id": 1, "text": "', 550, 'THE END"}\n{"text": "a short one"}\n');
    const txt = join(dir, 'huge.txt');
    writeRepeated(txt, '', 600, 'THE END');
    for (const [path, documents] of [[jsonl, 2], [txt, 1]] as const) {
      const { meta, metaPath } = await buildTokenCache(await fileCorpus([path]), tok, { cacheDir: join(dir, 'cache') });
      assert.equal(meta.numDocuments, documents);
      const ds = TokenDataset.open(metaPath);
      assert.ok(BLOCK.startsWith(tok.decode(ds.readTokens(0, 100))), 'the cache starts with the document');
      const lastDoc = documents === 2 ? ['a short one'] : [];
      const tailIds = Array.from(ds.readTokens(ds.numTokens - 60, 60));
      const tailText = tok.decode(tailIds);
      assert.ok(tailText.includes(`THE END<|endoftext|>${lastDoc.map((d) => `${d}<|endoftext|>`).join('')}`), JSON.stringify(tailText));
      ds.close();
      rmSync(path);
    }
    const peakMiB = process.resourceUsage().maxRSS / 1024;
    process.stdout.write(`# peak RSS ${peakMiB.toFixed(0)} MiB\n`);
    assert.ok(peakMiB < 1500, `peak RSS ${peakMiB.toFixed(0)} MiB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
