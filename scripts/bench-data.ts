/**
 * Data pipeline benchmark: tokenizer speed per implementation (chars/s, tokens/s, serial), the
 * token cache built by worker threads (tokens/s and chars/s for byte-level BPE and the
 * SentencePiece-style path, cache bytes per corpus byte), the time from nothing to training data
 * ready (tokenizer training + tokenising), and with --first-update-mb the time from `relora
 * train` starting on an empty cache to its first update, and again with the cache it left.
 *
 *   npm run bench:data -- [--mb 64] [--workers N] [--first-update-mb 2048]
 *
 * Each figure comes with the load average when it was taken (this machine is shared), and per CPU
 * second (process.cpuUsage: all threads), which a busy machine disturbs less.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainByteLevelBpeOnCorpus } from '../src/data/bpe-train.ts';
import { loadBrownCorpus } from '../src/data/brown.ts';
import { fileCorpus, type Corpus } from '../src/data/corpus.ts';
import { buildTokenCache } from '../src/data/token-cache.ts';
import { loadTokenizer } from '../src/data/tokenizer-files.ts';
import type { Tokenizer } from '../src/data/tokenizer.ts';
import { writeBrownJsonl } from './make-data-corpus.ts';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const corpusMb = flag('mb', 64);
const workers = flag('workers', availableParallelism());
const firstUpdateMb = flag('first-update-mb', 0);
const fixtures = join(import.meta.dirname, '..', 'test', 'fixtures', 'data');
const brown = loadBrownCorpus({}).train;
const sample = brown.join('\n\n');

/** The 1-minute load average, to print beside a figure. */
const load = () => `load ${loadavg()[0]!.toFixed(2)}`;

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
      ` ${rate(chars, cpu)} M chars/s ${rate(tokens, cpu)} M tokens/s per CPU second  (${chars} chars, serial, ${load()})`,
  );
}

/**
 * Builds the token cache of `corpus` with `w` workers and prints its rates: over the whole build,
 * and in steady state (after the first quarter of the tokens: workers started, word caches warm).
 * Returns its wall seconds.
 */
async function cacheRun(name: string, corpus: Corpus, tok: Tokenizer, w: number, dir: string, corpusBytes: number, corpusChars: number): Promise<number> {
  const before = load();
  const cpuNow = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; };
  const marks: Array<{ t: number; cpu: number; tokens: number }> = [];
  const onProgress = ({ tokens }: { tokens: number }) => marks.push({ t: performance.now() / 1000, cpu: cpuNow(), tokens });
  const { result, wall, cpu } = await timed(() => buildTokenCache(corpus, tok, { cacheDir: dir, workers: w, onProgress, progressEvery: 100 }));
  const { meta, metaPath, workersUsed } = result;
  const cacheBytes = statSync(metaPath.replace(/\.json$/, '.tokens')).size;
  const end = marks[marks.length - 1]!;
  const from = marks.find((m) => m.tokens >= meta.numTokens / 4) ?? marks[0]!;
  const steadyTokens = end.tokens - from.tokens;
  const steadyChars = (steadyTokens * corpusChars) / meta.numTokens; // at the corpus's mean chars per token
  console.log(
    `token cache, ${name}, ${w} worker(s) asked, ${workersUsed} started: ${wall.toFixed(1)} s (${cpu.toFixed(1)} CPU s); ` +
      `${rate(meta.numTokens, wall)} M tokens/s ${rate(corpusChars, wall)} M chars/s wall, ` +
      `${rate(meta.numTokens, cpu)} M tokens/s ${rate(corpusChars, cpu)} M chars/s per CPU second; ` +
      `steady state (last 3/4): ${rate(steadyTokens, end.t - from.t)} M tokens/s ${rate(steadyChars, end.t - from.t)} M chars/s wall, ` +
      `${rate(steadyTokens, end.cpu - from.cpu)} M tokens/s ${rate(steadyChars, end.cpu - from.cpu)} M chars/s per CPU second; ` +
      `${meta.dtype}, ${(cacheBytes / corpusBytes).toFixed(3)} cache bytes per corpus byte (${before} → ${load()})`,
  );
  return wall;
}

/**
 * `relora train` (default config) on `data` with the cache in `cacheDir`: seconds from start to
 * the first update's progress line, then the process is killed (as a user might stop it).
 */
function timeToFirstUpdate(data: string, cacheDir: string, out: string): Promise<{ seconds: number; log: string[] }> {
  const entry = join(import.meta.dirname, '..', 'src', 'cli', 'entry.ts');
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', entry, 'train', '--data', data, '--out', out, '--no-report'], {
    env: { ...process.env, RELORA_CACHE_DIR: cacheDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  let partial = '';
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const seconds = (performance.now() - t0) / 1000;
        log.push(`${seconds.toFixed(1).padStart(6)} s  ${line}`);
        if (/^step 1\//.test(line)) {
          child.kill('SIGKILL');
          resolve({ seconds, log });
        }
      }
    });
    child.on('close', (code) => reject(new Error(`relora train exited (${code}) before its first update:\n${log.join('\n')}`)));
  });
}

async function firstUpdate(work: string): Promise<void> {
  const free = statfsSync(work);
  const need = firstUpdateMb * 2 ** 20 * 1.6; // the corpus, its token cache (≈ 0.5) and headroom
  if (free.bavail * free.bsize < need) throw new Error(`--first-update-mb ${firstUpdateMb}: ${work} has ${(free.bavail * free.bsize / 2 ** 30).toFixed(1)} GiB free, need ${(need / 2 ** 30).toFixed(1)}`);
  const data = join(work, 'first-update.jsonl');
  const bytes = await writeBrownJsonl(data, firstUpdateMb * 2 ** 20);
  const cacheDir = join(work, 'first-update-cache');
  for (const [i, what] of ['empty cache', 'the cache the first run left (tokenizer and partial token cache)'].entries()) {
    const before = load();
    const { seconds, log } = await timeToFirstUpdate(data, cacheDir, join(work, `first-update-run-${i}`));
    console.log(`\ntime to first update, ${(bytes / 2 ** 30).toFixed(2)} GiB JSONL, ${what}: ${seconds.toFixed(1)} s (${before} → ${load()})`);
    for (const line of log) console.log(`  ${line}`);
  }
  rmSync(data, { force: true });
}

const work = mkdtempSync(join(tmpdir(), 'relora-bench-data-'));
try {
  const jsonl = join(work, 'corpus.jsonl');
  const lines: string[] = [];
  let bytes = 0;
  let corpusChars = 0;
  for (let i = 0; bytes < corpusMb * 2 ** 20; i++) {
    const doc = brown[i % brown.length]!;
    const line = JSON.stringify({ text: doc });
    lines.push(line);
    bytes += Buffer.byteLength(line) + 1;
    corpusChars += doc.length;
  }
  writeFileSync(jsonl, lines.join('\n') + '\n');
  const corpusBytes = statSync(jsonl).size;
  console.log(`corpus: ${(corpusBytes / 2 ** 20).toFixed(0)} MiB JSONL (Brown documents repeated), ${workers} tokenizer workers, ${availableParallelism()} cores, ${load()}`);

  const corpus = await fileCorpus([jsonl]);
  const trained = await timed(() => trainByteLevelBpeOnCorpus(corpus, { vocabSize: 8000 }));
  const { tokenizer: bpe, sample: s } = trained.result;
  const tTrain = trained.wall;
  console.log(`tokenizer training: ${tTrain.toFixed(1)} s (${trained.cpu.toFixed(1)} CPU s) on ${s.documents} documents, ${(s.chars / 2 ** 20).toFixed(1)} Mi chars (${load()})`);

  await speed('byte-level BPE (ours, vocab 8000)', bpe, brown.slice(0, 100));
  await speed('GPT-2-style fixture (fast path)', await loadTokenizer(join(fixtures, 'gpt2-style')), brown.slice(0, 100));
  const llama = await loadTokenizer(join(fixtures, 'llama2-style'));
  await speed('LLaMA-2-style fixture (fast path)', llama, brown.slice(0, 100));
  await speed('LLaMA-2-style fixture (HF js)', await loadTokenizer(join(fixtures, 'llama2-style'), 'huggingface'), brown.slice(0, 20));
  const long = sample.slice(0, 400_000);
  for (const implementation of ['auto', 'huggingface'] as const) {
    const tok = await loadTokenizer(join(fixtures, 'llama2-style'), implementation);
    const { wall, cpu } = await timed(() => tok.encode(long));
    console.log(`LLaMA-2-style (${implementation === 'auto' ? 'fast path' : 'HF js'}), one 400 K-character document: ${wall.toFixed(2)} s (${cpu.toFixed(2)} CPU s)`);
  }

  for (const w of [1, workers]) {
    const sec = await cacheRun('byte-level BPE', corpus, bpe, w, join(work, `cache-${w}`), corpusBytes, corpusChars);
    if (w === workers) console.log(`data ready (tokenizer training + tokenising, empty cache): ${(tTrain + sec).toFixed(1)} s`);
  }
  await cacheRun('LLaMA-2-style (SentencePiece-style fast path)', corpus, llama, workers, join(work, 'cache-llama'), corpusBytes, corpusChars);
  if (firstUpdateMb > 0) await firstUpdate(work);
} finally {
  rmSync(work, { recursive: true, force: true });
}
