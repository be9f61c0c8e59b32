/**
 * The worker that owns the WebGPU device for the synchronous backend (./bridge.ts): it uploads a
 * call's arrays, records the kernel, reads the outputs back and writes them into the caller's
 * shared reply buffer. The caller blocks on that buffer, which WebGPU's asynchronous readback
 * would not allow on its own thread.
 */
import { parentPort, workerData } from 'node:worker_threads';

import type { GpuTensor } from './device.ts';
import { describeAdapter } from './gpu.ts';
import { WebGpuKernels } from './kernels.ts';
import { OUTPUTS, REPLY_HEADER_BYTES, STATUS_ERROR, STATUS_OK, type Arg, type CallMessage } from './bridge-protocol.ts';

if (!parentPort) throw new Error('bridge-worker.ts runs as a worker thread');
const port = parentPort;

type Method = (...args: unknown[]) => void;

function finish(reply: SharedArrayBuffer, status: number, value: number, error = ''): void {
  const head = new Float64Array(reply, 0, 3);
  const bytes = new TextEncoder().encode(error);
  head[1] = value;
  head[2] = bytes.length;
  if (bytes.length) new Uint8Array(reply, REPLY_HEADER_BYTES, Math.min(bytes.length, reply.byteLength - REPLY_HEADER_BYTES)).set(bytes.subarray(0, reply.byteLength - REPLY_HEADER_BYTES));
  const flag = new Int32Array(reply, 0, 1);
  Atomics.store(flag, 0, status);
  Atomics.notify(flag, 0);
}

async function call(k: WebGpuKernels, msg: CallMessage): Promise<void> {
  const { kernel, args, reply } = msg;
  // Ids and targets are checked as the js backend checks them (a shader cannot throw).
  if (kernel === 'embeddingForward' || kernel === 'embeddingBackward' || kernel.startsWith('crossEntropy')) {
    validate(kernel, args);
  }
  const uploaded: GpuTensor[] = [];
  const gargs = args.map((a) => {
    if (a instanceof Float32Array || a instanceof Int32Array) {
      const t = k.gpu.upload(a);
      uploaded.push(t);
      return t;
    }
    return a;
  });
  let value = 0;
  if (kernel === 'sum' || kernel === 'sumSquares') {
    const out = k.gpu.alloc(1);
    uploaded.push(out);
    (kernel === 'sum' ? k.sumInto : k.sumSquaresInto).call(k, gargs[0] as GpuTensor, args[1] as number, out, 0);
    value = (await k.gpu.readFloats(out))[0];
  } else {
    ((k as unknown as Record<string, Method>)[kernel]).apply(k, gargs);
    if (kernel === 'crossEntropyForward') value = countRows(args[1] as Int32Array, args[4] as number, args[6] as number);
  }
  // Outputs go back to back after the header, in OUTPUTS order (absent ones skipped).
  let offset = REPLY_HEADER_BYTES;
  for (const i of OUTPUTS[kernel]) {
    const a = args[i];
    if (!(a instanceof Float32Array)) continue;
    const host = await k.gpu.readFloats(gargs[i] as GpuTensor, a.length);
    new Float32Array(reply, offset, a.length).set(host);
    offset += a.length * 4;
  }
  for (const t of uploaded) k.gpu.release(t);
  finish(reply, STATUS_OK, value);
}

function countRows(targets: Int32Array, rows: number, ignoreIndex: number): number {
  let n = 0;
  for (let r = 0; r < rows; r++) if (targets[r] !== ignoreIndex) n++;
  return n;
}

/** The js backend's own checks on ids and targets, so errors read the same on every backend. */
function validate(kernel: string, args: Arg[]): void {
  if (kernel === 'embeddingForward' || kernel === 'embeddingBackward') {
    const ids = args[1] as Int32Array, nIds = args[3] as number, vocab = args[4] as number;
    const what = kernel === 'embeddingForward' ? 'embedding' : 'embeddingBackward';
    for (let r = 0; r < nIds; r++) {
      if (ids[r] < 0 || ids[r] >= vocab) throw new Error(`${what}: token id ${ids[r]} at position ${r} is outside [0, ${vocab})`);
    }
    return;
  }
  const targets = args[1] as Int32Array;
  const rows = args[4] as number, V = args[5] as number, ignore = args[6] as number;
  const what = kernel === 'crossEntropyForward' ? 'crossEntropy' : kernel;
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t !== ignore && (t < 0 || t >= V)) throw new Error(`${what}: target ${t} at row ${r} is outside [0, ${V}) and is not the ignore index ${ignore}`);
  }
}

let kernels: WebGpuKernels | null = null;

// The device opens as the worker starts; its report (or the reason there is none) goes to the
// reply buffer the starting thread waits on.
const opened = (workerData as { reply: SharedArrayBuffer }).reply;
let queue = WebGpuKernels.open().then(
  (k) => {
    kernels = k;
    finish(opened, STATUS_OK, 0, JSON.stringify({ ...k.gpu.adapter, name: describeAdapter(k.gpu.adapter) }));
  },
  (err: unknown) => finish(opened, STATUS_ERROR, 0, err instanceof Error ? err.message : String(err)),
);

port.on('message', (msg: CallMessage) => {
  queue = queue.then(async () => {
    try {
      if (!kernels) throw new Error('WebGPU: the device is not open');
      await call(kernels, msg);
    } catch (err) {
      finish(msg.reply, STATUS_ERROR, 0, err instanceof Error ? err.message : String(err));
    }
  });
});
