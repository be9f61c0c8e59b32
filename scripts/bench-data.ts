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

/** Wall and CPU seconds of `fn` (CPU time over all threads: a figure a busy machine disturbs less). */
async function timed<T>(fn: () => Promise<T> | T): Promise<{ result: T; wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await fn();
  const c = process.cpuUsage(c0);
  return { result, wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

const rate = (n: number, s: number) => (n / s / 1e6).toFixed(2).padStart(6);

async function speed(name: string, tok: Tokenizer, docs: string[]): Promise<void> {
  const chars = docs.reduce((sum, d) => sum + d.length, 0);
  const { result: tokens, wall, cpu } = await timed(() => docs.reduce((sum, d) => sum + tok.encode(d).length, 0));
  console.log(
    `${name.padEnd(34)} ${rate(chars, wall)} M chars/s ${rate(tokens, wall)} M tokens/s wall;` +
      ` ${rate(chars, cpu)} M chars/s ${rate(tokens, cpu)} M tokens/s per CPU second  (${chars} chars, serial)`,
  );
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

  const corpus = await fileCorpus([jsonl]);
  const trained = await timed(() => trainByteLevelBpeOnCorpus(corpus, { vocabSize: 8000 }));
  const { tokenizer: bpe, sample: s } = trained.result;
  const tTrain = trained.wall;
  console.log(`tokenizer training: ${tTrain.toFixed(1)} s (${trained.cpu.toFixed(1)} CPU s) on ${s.documents} documents, ${(s.chars / 2 ** 20).toFixed(1)} Mi chars`);

  await speed('byte-level BPE (ours, vocab 8000)', bpe, brown.slice(0, 100));
  await speed('GPT-2-style fixture (fast path)', await loadTokenizer(join(fixtures, 'gpt2-style')), brown.slice(0, 100));
  await speed('LLaMA-2-style fixture (fast path)', await loadTokenizer(join(fixtures, 'llama2-style')), brown.slice(0, 100));
  await speed('LLaMA-2-style fixture (HF js)', await loadTokenizer(join(fixtures, 'llama2-style'), 'huggingface'), brown.slice(0, 20));
  const long = sample.slice(0, 400_000);
  for (const implementation of ['auto', 'huggingface'] as const) {
    const llama = await loadTokenizer(join(fixtures, 'llama2-style'), implementation);
    const { wall, cpu } = await timed(() => llama.encode(long));
    console.log(`LLaMA-2-style (${implementation === 'auto' ? 'fast path' : 'HF js'}), one 400 K-char document: ${wall.toFixed(2)} s (${cpu.toFixed(2)} CPU s)`);
  }

  for (const w of [1, workers]) {
    const { result, wall: sec, cpu } = await timed(() => buildTokenCache(corpus, bpe, { cacheDir: join(work, `cache-${w}`), workers: w }));
    const { meta, metaPath, workersUsed } = result;
    const cacheBytes = statSync(metaPath.replace(/\.json$/, '.tokens')).size;
    console.log(
      `token cache, byte-level BPE, ${w} worker(s) asked, ${workersUsed} started: ${sec.toFixed(1)} s, ${rate(meta.numTokens, sec)} M tokens/s wall, ` +
        `${rate(meta.numTokens, cpu)} M tokens/s per CPU second, ${meta.dtype}, ${(cacheBytes / corpusBytes).toFixed(3)} cache bytes per corpus byte`,
    );
    if (w === workers) console.log(`data ready (tokenizer training + tokenising, empty cache): ${(tTrain + sec).toFixed(1)} s`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
