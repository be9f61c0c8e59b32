/**
 * `node:worker_threads` for the WebGPU bridge in a browser. The bridge's two ends — ./bridge.ts,
 * where the training thread blocks on a SharedArrayBuffer, and ./bridge-worker.ts, which owns the
 * device — are written against Node's worker threads; a browser bundle maps that module to this
 * one (src/demo/server.ts does), so both run unchanged in two dedicated workers. Their messages
 * and shared reply buffers travel over a MessagePort the page hands to each end:
 *
 *   training worker: connectBridge(port); `new Worker(...)` then posts through that port.
 *   device worker:   await acceptBridge(port); then import bridge-worker.ts, which finds
 *                    `workerData` (the caller's reply buffer) and `parentPort` filled in.
 *
 * Blocking (Atomics.wait) is allowed in a dedicated worker, never on a page's main thread, which
 * is why the training loop runs in a worker too. SharedArrayBuffer needs a cross-origin-isolated
 * page.
 */
import { REPLY_HEADER_BYTES, STATUS_ERROR } from './bridge-protocol.ts';

/** The part of a MessagePort the bridge uses. */
export interface BridgePort {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

/** The first message on the port: what `new Worker` was given as workerData. */
interface OpenMessage {
  kind: 'open';
  workerData: Record<string, unknown>;
}

let callerPort: BridgePort | null = null;

/** Training side: the port that the bridge's `new Worker(...)` talks through. */
export function connectBridge(port: BridgePort): void {
  callerPort = port;
}

/**
 * Stands in for the device worker on the training side. The real worker was started by the page;
 * constructing this only announces the caller's reply buffer to it.
 */
export class Worker {
  private readonly port: BridgePort;

  constructor(_script: unknown, options: { workerData?: Record<string, unknown> } = {}) {
    if (!callerPort) throw new Error('WebGPU: no device worker is connected in this browser thread (connectBridge was not called)');
    this.port = callerPort;
    this.port.postMessage({ kind: 'open', workerData: options.workerData });
  }

  postMessage(message: unknown, transfer: Transferable[] = []): void {
    this.port.postMessage(message, transfer);
  }

  // The page, which started the device worker, also ends it; a page's threads never keep
  // anything alive, so there is nothing to unreference.
  unref(): void {}
  ref(): void {}
  on(): this {
    return this;
  }
  once(): this {
    return this;
  }
  off(): this {
    return this;
  }
  terminate(): Promise<number> {
    return Promise.resolve(0);
  }
}

type Listener = (message: unknown) => void;
const listeners: Listener[] = [];
const early: unknown[] = [];

/** Device side: filled from the caller's first message before bridge-worker.ts is imported. */
export const workerData: Record<string, unknown> = {};

/** Device side: the caller's messages (those that arrive before a listener wait for one). */
export const parentPort = {
  on(event: string, listener: Listener): void {
    if (event !== 'message') return;
    listeners.push(listener);
    for (const m of early.splice(0)) listener(m);
  },
  postMessage(message: unknown, transfer: Transferable[] = []): void {
    devicePort?.postMessage(message, transfer);
  },
};

let devicePort: BridgePort | null = null;

/** Device side: serves `port` as `parentPort`; resolves once the caller's first message has filled `workerData`. */
export function acceptBridge(port: BridgePort): Promise<void> {
  devicePort = port;
  return new Promise((resolve) => {
    port.onmessage = ({ data }) => {
      const open = data as Partial<OpenMessage> | null;
      if (open?.kind === 'open' && Object.keys(workerData).length === 0) {
        Object.assign(workerData, open.workerData);
        resolve();
      } else if (listeners.length === 0) {
        early.push(data);
      } else {
        for (const l of listeners) l(data);
      }
    };
  });
}

/** Device side, when bridge-worker.ts could not even load: the reason goes where the caller waits. */
export function failBridge(message: string): void {
  const reply = workerData.reply;
  if (!(reply instanceof SharedArrayBuffer)) return;
  const bytes = new TextEncoder().encode(message).subarray(0, reply.byteLength - REPLY_HEADER_BYTES);
  new Float64Array(reply, 0, 3)[2] = bytes.length;
  new Uint8Array(reply, REPLY_HEADER_BYTES, bytes.length).set(bytes);
  const flag = new Int32Array(reply, 0, 1);
  Atomics.store(flag, 0, STATUS_ERROR);
  Atomics.notify(flag, 0);
}
