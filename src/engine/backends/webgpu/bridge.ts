/**
 * The `webgpu` backend for the engine's synchronous Kernels interface, in Node: a worker thread
 * owns the WebGPU device (./bridge-worker.ts); each kernel call sends its arrays there and blocks
 * on a shared buffer until the outputs are back (WebGPU reads back only asynchronously, and not
 * on a thread that is blocked).
 *
 * This is the correctness path: every kernel runs on the GPU, but a call's arrays cross to the
 * device and back, so it is not fast. Keeping tensors resident across a step is what
 * ./kernels.ts (GpuTensor) offers to code written against device tensors.
 */
import { Worker } from 'node:worker_threads';

import { emulatedGemmBf16, toBf16Packed } from '../bf16.ts';
import type { Kernels } from '../kernels.ts';
import { OUTPUTS, REPLY_HEADER_BYTES, STATUS_ERROR, STATUS_PENDING, type Arg } from './bridge-protocol.ts';
import type { AdapterReport } from './gpu.ts';

let worker: Worker | null = null;
let adapter: (AdapterReport & { name: string }) | null = null;
// Created on first use: a browser bundle imports this module but has no SharedArrayBuffer.
let replyBuffer: SharedArrayBuffer | null = null;

/**
 * The worker, started with the reply buffer its adapter report goes to. From the TypeScript
 * sources (tsx) a worker does not inherit the loader, so a small bootstrap registers it; a
 * bootstrap that fails writes its error where the caller waits, rather than leaving it blocked.
 */
function startWorker(reply: SharedArrayBuffer): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./bridge-worker.js', import.meta.url), { workerData: { reply } });
  const url = new URL('./bridge-worker.ts', import.meta.url).href;
  const bootstrap = `
    const { workerData } = require('node:worker_threads');
    import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); }).catch((err) => {
      const bytes = new TextEncoder().encode(String(err && err.stack || err));
      const head = new Float64Array(workerData.reply, 0, 3);
      head[2] = Math.min(bytes.length, workerData.reply.byteLength - ${REPLY_HEADER_BYTES});
      new Uint8Array(workerData.reply, ${REPLY_HEADER_BYTES}, head[2]).set(bytes.subarray(0, head[2]));
      const flag = new Int32Array(workerData.reply, 0, 1);
      Atomics.store(flag, 0, ${STATUS_ERROR});
      Atomics.notify(flag, 0);
    });`;
  return new Worker(bootstrap, { eval: true, workerData: { reply } });
}

/** Blocks until the worker answers on `reply`; returns the value, or throws its error. */
function wait(reply: SharedArrayBuffer, what: string): number {
  const flag = new Int32Array(reply, 0, 1);
  // A minute per call: long enough for a slow CPU adapter, short enough to report a hung worker.
  if (Atomics.wait(flag, 0, STATUS_PENDING, 60_000) === 'timed-out') throw new Error(`WebGPU: ${what} did not answer within 60 s`);
  const head = new Float64Array(reply, 0, 3);
  if (Atomics.load(flag, 0) === STATUS_ERROR) {
    const n = head[2];
    throw new Error(new TextDecoder().decode(new Uint8Array(reply, REPLY_HEADER_BYTES, Math.min(n, reply.byteLength - REPLY_HEADER_BYTES)).slice()));
  }
  return head[1];
}

function fresh(bytes: number): SharedArrayBuffer {
  if (!replyBuffer || replyBuffer.byteLength < bytes) replyBuffer = new SharedArrayBuffer(Math.max(bytes, (replyBuffer?.byteLength ?? 0) * 2));
  new Int32Array(replyBuffer, 0, 1)[0] = STATUS_PENDING;
  return replyBuffer;
}

/** Starts the worker and opens the adapter; throws the reason when there is none. */
function open(): void {
  if (worker) return;
  const reply = fresh(1 << 16);
  const w = startWorker(reply);
  w.unref();
  try {
    wait(reply, 'opening the adapter');
  } catch (err) {
    void w.terminate();
    throw err;
  }
  const n = new Float64Array(reply, 0, 3)[2];
  adapter = JSON.parse(new TextDecoder().decode(new Uint8Array(reply, REPLY_HEADER_BYTES, n).slice())) as AdapterReport & { name: string };
  worker = w;
}

function call(kernel: string, args: Arg[]): number {
  const outs = OUTPUTS[kernel].map((i) => args[i]).filter((a): a is Float32Array => a instanceof Float32Array);
  const bytes = REPLY_HEADER_BYTES + outs.reduce((s, a) => s + a.length * 4, 0);
  const reply = fresh(Math.max(bytes, REPLY_HEADER_BYTES + 1024));
  worker!.postMessage({ kind: 'call', kernel, args, reply });
  const value = wait(reply, kernel);
  let offset = REPLY_HEADER_BYTES;
  for (const a of outs) {
    a.set(new Float32Array(reply, offset, a.length));
    offset += a.length * 4;
  }
  return value;
}

let kernels: Kernels | null = null;

/** The webgpu Kernels (opening the adapter on first use); throws when no adapter is found. */
export function loadWebGpuKernels(): Kernels {
  if (kernels) return kernels;
  open();
  const via = (name: string) => (...args: Arg[]) => call(name, args);
  const gemm = via('gemm') as Kernels['gemm'];
  const k = {
    name: 'webgpu',
    blas: `webgpu (${adapter!.name})`,
    getThreads: () => 1,
    setThreads: () => {},
    gemm,
    toBf16: toBf16Packed,
    gemmBf16: emulatedGemmBf16(gemm),
    hasBf16Gemm: () => false,
  } as Record<string, unknown>;
  for (const name of Object.keys(OUTPUTS)) if (!(name in k)) k[name] = via(name);
  kernels = k as unknown as Kernels;
  return kernels;
}

/** The adapter the backend runs on, or null before it is opened. */
export function webGpuAdapter(): (AdapterReport & { name: string }) | null {
  return adapter;
}
