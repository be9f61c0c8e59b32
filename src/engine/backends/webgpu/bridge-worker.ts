/**
 * The worker that owns the WebGPU device for the synchronous backend (./bridge.ts). It replays
 * the commands the training thread recorded — buffer allocations, uploads, compute passes,
 * copies — in order, and answers reads through the caller's shared reply buffer, which the
 * caller blocks on (WebGPU reads back only asynchronously, and not on a thread that is blocked).
 *
 * Sizes were checked on the training thread when the commands were recorded; an error here
 * (a lost device, a driver failure) is kept and reported by the next read.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { GpuDevice, type GpuTensor } from './device.ts';
import { describeAdapter } from './gpu.ts';
import { REPLY_HEADER_BYTES, STATUS_ERROR, STATUS_OK, type BatchMessage, type BoundHandle, type Command } from './bridge-protocol.ts';

if (!parentPort) throw new Error('bridge-worker.ts runs as a worker thread');
const port = parentPort;

function finish(reply: SharedArrayBuffer, status: number, value: number, error = ''): void {
  const head = new Float64Array(reply, 0, 3);
  const bytes = new TextEncoder().encode(error).subarray(0, reply.byteLength - REPLY_HEADER_BYTES);
  head[1] = value;
  head[2] = bytes.length;
  if (bytes.length) new Uint8Array(reply, REPLY_HEADER_BYTES, bytes.length).set(bytes);
  const flag = new Int32Array(reply, 0, 1);
  Atomics.store(flag, 0, status);
  Atomics.notify(flag, 0);
}

let gpu: GpuDevice | null = null;
const handles = new Map<number, GpuTensor>();
/** The first failure since the last read, reported by the next one. */
let failure: string | null = null;

function tensor(handle: number): GpuTensor {
  if (handle === 0) return gpu!.none;
  const t = handles.get(handle);
  if (!t) throw new Error(`WebGPU worker: unknown buffer handle ${handle}`);
  return t;
}

const bind = (b: BoundHandle[]): { t: GpuTensor; write: boolean }[] => b.map(([h, write]) => ({ t: tensor(h), write }));

async function replay(c: Command): Promise<void> {
  const g = gpu!;
  switch (c.op) {
    case 'alloc': handles.set(c.handle, g.alloc(c.n, c.dtype)); break;
    case 'release': g.release(tensor(c.handle)); handles.delete(c.handle); break;
    case 'upload': handles.set(c.handle, g.upload(c.data)); break;
    case 'write': g.write(tensor(c.handle), c.data); break;
    case 'fill': g.fill(tensor(c.handle), c.value, c.n); break;
    case 'copy': g.copy(tensor(c.src), tensor(c.dst), c.n, c.srcOffset, c.dstOffset); break;
    case 'dispatch': g.dispatch(c.shader, bind(c.bindings), c.params, c.groups); break;
    case 'dispatch1d': g.dispatch1d(c.shader, bind(c.bindings), c.params, c.n); break;
    case 'read': {
      if (failure !== null) {
        const f = failure;
        failure = null;
        throw new Error(f);
      }
      const t = tensor(c.handle);
      const host = await g.read(t, c.n, c.offset);
      const at = REPLY_HEADER_BYTES + c.at;
      const dst = t.dtype === 'int32' ? new Int32Array(c.reply, at, c.n) : new Float32Array(c.reply, at, c.n);
      dst.set(host);
      if (c.last) finish(c.reply, STATUS_OK, g.buffersCreated);
      break;
    }
  }
}

async function run(commands: Command[]): Promise<void> {
  for (const c of commands) {
    try {
      await replay(c);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (c.op === 'read') finish(c.reply, STATUS_ERROR, 0, message);
      else failure ??= message;
    }
  }
  // Start the GPU on what this batch recorded while the next one is being recorded.
  gpu?.flush();
}

// The device opens as the worker starts; its report (or the reason there is none) goes to the
// reply buffer the starting thread waits on.
const opened = (workerData as { reply: SharedArrayBuffer }).reply;
let queue = GpuDevice.open().then(
  (g) => {
    gpu = g;
    finish(opened, STATUS_OK, 0, JSON.stringify({ ...g.adapter, name: describeAdapter(g.adapter) }));
  },
  (err: unknown) => finish(opened, STATUS_ERROR, 0, err instanceof Error ? err.message : String(err)),
);

port.on('message', (msg: BatchMessage) => {
  queue = queue.then(() => {
    if (gpu) return run(msg.commands);
    for (const c of msg.commands) if (c.op === 'read') finish(c.reply, STATUS_ERROR, 0, 'WebGPU: the device is not open');
  });
});
