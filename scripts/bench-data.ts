/**
 * Data pipeline benchmark: tokenizer speed per implementation (chars/s, tokens/s, serial), the
 * token cache built by worker threads (tokens/s, cache bytes per corpus byte), and the time from
 * nothing to training data ready (tokenizer training + tokenising), the part of the time to the
 * first update that the data pipeline owns.
 *
 *   npm run bench:data -- [--mb 64] [--workers N]
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainByteLevelBpeOnCorpus } from '../src/data/bpe-train.ts';
import { loadBrownCorpus } from '../src/data/brown.ts';
import { fileCorpus } from '../src/data/corpus.ts';
import { buildTokenCache } from '../src/data/token-cache.ts';
import { loadTokenizer } from '../src/data/tokenizer-files.ts';
import type { Tokenizer } from '../src/data/tokenizer.ts';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const corpusMb = flag('mb', 64);
const workers = flag('workers', availableParallelism());
const fixtures = join(import.meta.dirname, '..', 'test', 'fixtures', 'data');
const brown = loadBrownCorpus({}).train;
const sample = brown.join('\n\n');

function speed(name: string, tok: Tokenizer, docs: string[]): void {
  const t0 = performance.now();
  let chars = 0;
  let tokens = 0;
  for (const d of docs) {
    chars += d.length;
    tokens += tok.encode(d).length;
  }
  const s = (performance.now() - t0) / 1000;
  console.log(`${name.padEnd(34)} ${(chars / s / 1e6).toFixed(2).padStart(7)} M chars/s ${(tokens / s / 1e6).toFixed(2).padStart(7)} M tokens/s  (${chars} chars, serial)`);
}

const work = mkdtempSync(join(tmpdir(), 'relora-bench-data-'));
try {
  const jsonl = join(work, 'corpus.jsonl');
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < corpusMb * 2 ** 20; i++) {
    const line = JSON.stringify({ text: brown[i % brown.length] });
    lines.push(line);
    bytes += Buffer.byteLength(line) + 1;
  }
  writeFileSync(jsonl, lines.join('\n') + '\n');
  const corpusBytes = statSync(jsonl).size;
  console.log(`corpus: ${(corpusBytes / 2 ** 20).toFixed(0)} MiB JSONL (Brown documents repeated), ${workers} tokenizer workers`);

  const t0 = performance.now();
  const corpus = await fileCorpus([jsonl]);
  const { tokenizer: bpe, sample: s } = await trainByteLevelBpeOnCorpus(corpus, { vocabSize: 8000 });
  const tTrain = (performance.now() - t0) / 1000;
  console.log(`tokenizer training: ${tTrain.toFixed(1)} s on ${s.documents} documents, ${(s.chars / 2 ** 20).toFixed(1)} Mi chars`);

  speed('byte-level BPE (ours, vocab 8000)', bpe, brown.slice(0, 100));
  speed('GPT-2-style fixture (fast path)', await loadTokenizer(join(fixtures, 'gpt2-style')), brown.slice(0, 100));
  speed('LLaMA-2-style fixture (fast path)', await loadTokenizer(join(fixtures, 'llama2-style')), brown.slice(0, 100));
  speed('LLaMA-2-style fixture (HF js)', await loadTokenizer(join(fixtures, 'llama2-style'), 'huggingface'), brown.slice(0, 20));
  const long = sample.slice(0, 400_000);
  for (const implementation of ['auto', 'huggingface'] as const) {
    const llama = await loadTokenizer(join(fixtures, 'llama2-style'), implementation);
    const tl = performance.now();
    llama.encode(long);
    console.log(`LLaMA-2-style (${implementation === 'auto' ? 'fast path' : 'HF js'}), one 400 K-char document: ${((performance.now() - tl) / 1000).toFixed(2)} s`);
  }

  for (const w of [1, workers]) {
    const tc = performance.now();
    const { meta, metaPath } = await buildTokenCache(corpus, bpe, { cacheDir: join(work, `cache-${w}`), workers: w });
    const sec = (performance.now() - tc) / 1000;
    const cacheBytes = statSync(metaPath.replace(/\.json$/, '.tokens')).size;
    console.log(
      `token cache, byte-level BPE, ${w} worker(s): ${sec.toFixed(1)} s, ${(meta.numTokens / sec / 1e6).toFixed(2)} M tokens/s, ` +
        `${meta.dtype}, ${(cacheBytes / corpusBytes).toFixed(3)} cache bytes per corpus byte`,
    );
    if (w === workers) console.log(`data ready (tokenizer training + tokenising, empty cache): ${(tTrain + sec).toFixed(1)} s`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
