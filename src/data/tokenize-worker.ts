/**
 * A worker thread of the parallel token-cache builder (encode-batches.ts): rebuilds the
 * tokenizer from its spec, then answers each batch of chunks with its ids, in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { encodeBatch } from './encode-batches.ts';
import type { TextChunk } from './pieces.ts';
import { tokenizerFromSpec, type TokenizerSpec } from './tokenizer-files.ts';

const tokenizer = tokenizerFromSpec(workerData as TokenizerSpec);
const port = parentPort!;
port.on('message', (chunks: TextChunk[]) => {
  try {
    const batch = encodeBatch(tokenizer, chunks);
    port.postMessage({ ok: true, ...batch }, [batch.ids.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ ok: false, message: (err as Error).message });
  }
});
