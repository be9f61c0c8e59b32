/**
 * Tokenising a corpus in batches of chunks, in this thread or in a pool of worker threads.
 * A batch is encoded by the same function either way, and results are taken in submission
 * order, so parallel tokenisation writes exactly the ids of the serial path.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TextChunk } from './pieces.ts';
import type { Tokenizer } from './tokenizer.ts';
import { tokenizerSpec, type TokenizerSpec } from './tokenizer-files.ts';

/** The ids of a batch (EOS after each document's last chunk), and how many documents ended in it. */
export interface EncodedBatch {
  ids: Uint32Array;
  documents: number;
  /** Whether the batch ends at the end of a document (not inside one). */
  endsDocument: boolean;
}

/** Encodes chunks in order; ids outside [0, vocabSize) are an error (they would corrupt the cache). */
export function encodeBatch(tokenizer: Tokenizer, chunks: readonly TextChunk[]): EncodedBatch {
  const parts: number[][] = [];
  let total = 0;
  let documents = 0;
  for (const chunk of chunks) {
    const ids = chunk.first || !tokenizer.encodeContinuation ? tokenizer.encode(chunk.text) : tokenizer.encodeContinuation(chunk.text);
    if (chunk.end) {
      ids.push(tokenizer.eosId);
      documents++;
    }
    parts.push(ids);
    total += ids.length;
  }
  const out = new Uint32Array(total);
  let at = 0;
  const vocab = tokenizer.vocabSize;
  for (const ids of parts) {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < vocab)) throw new Error(`tokenizer produced id ${id}, outside [0, ${vocab})`);
      out[at++] = id;
    }
  }
  return { ids: out, documents, endsDocument: chunks.length > 0 && chunks[chunks.length - 1]!.end };
}

/** Encodes batches; `submit` returns results in any order of completion, `take` in submission order. */
export interface BatchEncoder {
  /** How many batches may be in flight before the oldest should be taken. */
  readonly depth: number;
  submit(chunks: TextChunk[]): void;
  /** The result of the oldest batch not yet taken. */
  take(): Promise<EncodedBatch>;
  close(): Promise<void>;
  /** Worker threads started so far (0: all in this thread). */
  readonly workersStarted: number;
}

class SerialEncoder implements BatchEncoder {
  readonly depth = 1;
  readonly workersStarted = 0;
  private pending: TextChunk[][] = [];
  constructor(private readonly tokenizer: Tokenizer) {}
  submit(chunks: TextChunk[]): void {
    this.pending.push(chunks);
  }
  take(): Promise<EncodedBatch> {
    return Promise.resolve(encodeBatch(this.tokenizer, this.pending.shift()!));
  }
  async close(): Promise<void> {}
}

type Reply = ({ ok: true } & EncodedBatch) | { ok: false; message: string };

/**
 * A worker running tokenize-worker next to this file: the .js file once built; under tsx (tests,
 * scripts) the .ts file, after registering tsx in the worker, which does not inherit the loader.
 */
function startWorker(spec: TokenizerSpec): Worker {
  const extension = extname(fileURLToPath(import.meta.url));
  const script = new URL(`./tokenize-worker${extension}`, import.meta.url);
  if (extension !== '.ts') return new Worker(script, { workerData: spec });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(script.href)}); });`;
  return new Worker(boot, { eval: true, workerData: spec });
}

interface Waiting {
  resolve: (batch: EncodedBatch) => void;
  reject: (err: Error) => void;
}

/**
 * Batches to encode in this thread before starting workers: a small corpus is done before
 * workers would have started (each loads the modules and rebuilds the tokenizer).
 */
const BATCHES_BEFORE_WORKERS = 4;

class WorkerPoolEncoder implements BatchEncoder {
  readonly depth: number;
  private workers: Worker[] = [];
  /** Per worker, the batches sent and not yet answered (a worker answers in order). */
  private readonly waiting: Waiting[][];
  private readonly results: Array<Promise<EncodedBatch>> = [];
  private submitted = 0;

  get workersStarted(): number {
    return this.workers.length;
  }

  constructor(private readonly tokenizer: Tokenizer, private readonly spec: TokenizerSpec, private readonly count: number) {
    this.depth = 2 * count;
    this.waiting = Array.from({ length: count }, () => []);
  }

  private start(): void {
    this.workers = Array.from({ length: this.count }, (_, w) => {
      const worker = startWorker(this.spec);
      worker.unref();
      const queue = this.waiting[w]!;
      worker.on('message', (reply: Reply) => {
        const waiting = queue.shift();
        if (reply.ok) waiting?.resolve({ ids: reply.ids, documents: reply.documents, endsDocument: reply.endsDocument });
        else waiting?.reject(new Error(reply.message));
      });
      worker.on('error', (err: Error) => {
        for (const waiting of queue.splice(0)) waiting.reject(new Error(`tokenizer worker failed: ${err.message}`));
      });
      return worker;
    });
  }

  submit(chunks: TextChunk[]): void {
    const n = this.submitted++;
    if (n < BATCHES_BEFORE_WORKERS) {
      // Same function, same ids; the result waits in order with the workers' ones.
      this.results.push(Promise.resolve().then(() => encodeBatch(this.tokenizer, chunks)));
      return;
    }
    if (this.workers.length === 0) this.start();
    const w = n % this.count;
    this.results.push(new Promise<EncodedBatch>((resolve, reject) => this.waiting[w]!.push({ resolve, reject })));
    this.workers[w]!.postMessage(chunks);
  }

  take(): Promise<EncodedBatch> {
    return this.results.shift()!;
  }

  async close(): Promise<void> {
    // Results not taken (after an error) must not become unhandled rejections.
    for (const r of this.results.splice(0)) r.catch(() => {});
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Default worker count: every core (the main thread reads and writes while they encode). */
export function defaultTokenizerWorkers(): number {
  return availableParallelism();
}

/**
 * An encoder for `tokenizer`: `workers` threads when above 1 and the tokenizer can be rebuilt
 * in a worker from its JSON (our own implementations can), else this thread.
 */
export function batchEncoder(tokenizer: Tokenizer, workers: number): BatchEncoder {
  const spec = workers > 1 ? tokenizerSpec(tokenizer) : null;
  return spec === null ? new SerialEncoder(tokenizer) : new WorkerPoolEncoder(tokenizer, spec, workers);
}

