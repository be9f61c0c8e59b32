/**
 * The `webgpu` backend for the engine's synchronous Kernels interface: a worker owns the WebGPU
 * device (./bridge-worker.ts), and this thread records each kernel call as compute passes on
 * device buffers (./remote-device.ts) and posts them without waiting. A tensor's data stays on
 * the device between kernels (./mirror.ts): the host copy is read back only when the host reads
 * it — the losses and the gradients' sums of squares, together, once per update — and that read is the one place this
 * thread blocks (WebGPU reads back only asynchronously, and not on a thread that is blocked).
 *
 * Kernels validate sizes here, as they are recorded, so a bad call throws at its call site.
 */
import { Worker } from 'node:worker_threads';

import { emulatedAttentionBf16 } from '../attention-bf16.ts';
import { emulatedGemmBf16, emulatedGemmBf16ToBf16, toBf16Packed, toBf16RowsPacked, widenBf16 } from '../bf16.ts';
import { composedCrossEntropyFused, composedDropoutApplyBf16 } from '../composed.ts';
import { jsKernels } from '../js.ts';
import type { Kernels } from '../kernels.ts';
import { OUTPUTS, REPLY_HEADER_BYTES, STATUS_ERROR, STATUS_PENDING, type BatchMessage } from './bridge-protocol.ts';
import type { AdapterReport } from './gpu.ts';
import { WebGpuKernels, type GemmOffsets } from './kernels.ts';
import { Mirror, type Bound } from './mirror.ts';
import { RemoteDevice, type Handle } from './remote-device.ts';

let worker: Worker | null = null;
let adapter: (AdapterReport & { name: string }) | null = null;

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

/** Blocks until the worker answers on `reply`; returns the header's value, or throws its error. */
function wait(reply: SharedArrayBuffer, what: string): number {
  const flag = new Int32Array(reply, 0, 1);
  // Five minutes: a read waits for all the work recorded before it, on a slow CPU adapter too.
  if (Atomics.wait(flag, 0, STATUS_PENDING, 300_000) === 'timed-out') throw new Error(`WebGPU: ${what} did not answer within 300 s`);
  const head = new Float64Array(reply, 0, 3);
  if (Atomics.load(flag, 0) === STATUS_ERROR) {
    const n = head[2];
    throw new Error(new TextDecoder().decode(new Uint8Array(reply, REPLY_HEADER_BYTES, Math.min(n, reply.byteLength - REPLY_HEADER_BYTES)).slice()));
  }
  return head[1];
}

/** Starts the worker and opens the adapter; throws the reason when there is none. */
function open(): Worker {
  if (worker) return worker;
  const reply = new SharedArrayBuffer(1 << 16);
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
  return w;
}

/** The js backend's own checks on ids and targets, so errors read the same on every backend. */
function validateIds(kernel: string, args: unknown[]): void {
  if (kernel === 'embeddingForward' || kernel === 'embeddingBackward') {
    const ids = args[1] as Int32Array, nIds = args[3] as number, vocab = args[4] as number;
    const what = kernel === 'embeddingForward' ? 'embedding' : 'embeddingBackward';
    for (let r = 0; r < nIds; r++) {
      if (ids[r] < 0 || ids[r] >= vocab) throw new Error(`${what}: token id ${ids[r]} at position ${r} is outside [0, ${vocab})`);
    }
  } else if (kernel.startsWith('crossEntropy')) {
    const targets = args[1] as Int32Array;
    const rows = args[4] as number, V = args[5] as number, ignore = args[6] as number;
    const what = kernel === 'crossEntropyForward' ? 'crossEntropy' : kernel;
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t !== ignore && (t < 0 || t >= V)) throw new Error(`${what}: target ${t} at row ${r} is outside [0, ${V}) and is not the ignore index ${ignore}`);
    }
  }
}

/** gemm's array arguments that may start inside a buffer (A, B, C): the kernel takes their offsets. */
const GEMM_OFFSETS: Record<number, keyof GemmOffsets> = { 6: 'a', 9: 'b', 13: 'c' };

type Method = (...args: unknown[]) => void;

/** Counters for tests and benchmarks. */
export interface WebGpuCounters {
  /** Synchronous readbacks since the backend opened (each blocks until the device has caught up). */
  readbacks: number;
  /** Storage buffers the device had created at the last readback: flat once its pool serves every step. */
  deviceBuffers: number;
  /** Device buffers alive now (held by tensors, parked with pooled arrays, or temporaries). */
  liveBuffers: number;
}

/** The engine-facing backend: each call binds its arrays to device buffers and records the kernel. */
class Bridge {
  readonly dev: RemoteDevice;
  readonly mirror: Mirror;
  readonly k: WebGpuKernels<Handle, RemoteDevice>;

  constructor(w: Worker) {
    this.dev = new RemoteDevice({
      post: (message: BatchMessage, transfer: ArrayBuffer[]) => w.postMessage(message, transfer),
      wait,
    });
    this.mirror = new Mirror(this.dev);
    this.k = new WebGpuKernels<Handle, RemoteDevice>(this.dev);
  }

  /** Runs `kernel` on device copies of its arrays. */
  call(kernel: string, args: unknown[]): void {
    if (kernel === 'embeddingForward' || kernel === 'embeddingBackward' || kernel.startsWith('crossEntropy')) validateIds(kernel, args);
    const outs = OUTPUTS[kernel] ?? [];
    const bound: { a: Float32Array; b: Bound; written: boolean }[] = [];
    const ids: Handle[] = [];
    // Arrays that start inside their buffer, for kernels without offsets: worked on in a copy.
    const views: { tmp: Handle; at: Handle; offset: number; n: number; written: boolean }[] = [];
    const offsets: GemmOffsets = {};
    const dargs = args.map((a, i) => {
      if (a instanceof Int32Array) {
        const h = this.dev.upload(a);
        ids.push(h);
        return h;
      }
      if (!(a instanceof Float32Array)) return a;
      const written = outs.includes(i);
      const b = this.mirror.bind(a);
      bound.push({ a, b, written });
      if (kernel === 'gemm') {
        offsets[GEMM_OFFSETS[i]] = b.offset;
        return b.handle;
      }
      if (b.offset === 0) return b.handle.length === a.length ? b.handle : { ...b.handle, length: a.length };
      const tmp = this.dev.alloc(a.length);
      this.dev.copy(b.handle, tmp, a.length, b.offset, 0);
      views.push({ tmp, at: b.handle, offset: b.offset, n: a.length, written });
      return tmp;
    });
    try {
      (this.k as unknown as Record<string, Method>)[kernel].apply(this.k, kernel === 'gemm' ? [...dargs, offsets] : dargs);
    } finally {
      for (const v of views) {
        if (v.written) this.dev.copy(v.tmp, v.at, v.n, 0, v.offset);
        this.dev.release(v.tmp);
      }
      for (const h of ids) this.dev.release(h);
      for (const { a, b, written } of bound) this.mirror.unbind(a, b, written);
    }
  }

  /** Σ x (or Σ x²) over x[0..n), read back: a synchronous readback. */
  sum(x: Float32Array, n: number, squares: boolean): number {
    const out = this.dev.alloc(1);
    const b = this.mirror.bind(x);
    try {
      const xs = b.offset === 0 ? b.handle : this.viewCopy(b, n);
      (squares ? this.k.sumSquaresInto : this.k.sumInto).call(this.k, xs, n, out, 0);
      if (xs !== b.handle) this.dev.release(xs);
      const v = new Float32Array(1);
      this.dev.read(out, 0, 1, v);
      return v[0];
    } finally {
      this.dev.release(out);
      this.mirror.unbind(x, b, false);
    }
  }

  /** out[i] = Σ x² of each xs[i], left on the device (read back with whatever the caller reads next). */
  sumSquaresEachInto(xs: readonly Float32Array[], sizes: readonly number[], out: Float32Array): void {
    if (out.length < xs.length) throw new Error(`sumSquaresEachInto: ${xs.length} arrays need an output of at least ${xs.length} elements, got ${out.length}`);
    const bo = this.mirror.bind(out);
    try {
      xs.forEach((x, i) => {
        const b = this.mirror.bind(x);
        const h = b.offset === 0 ? b.handle : this.viewCopy(b, sizes[i]);
        this.k.sumSquaresInto(h, sizes[i], bo.handle, bo.offset + i);
        if (h !== b.handle) this.dev.release(h);
        this.mirror.unbind(x, b, false);
      });
    } finally {
      this.mirror.unbind(out, bo, true);
    }
  }

  /** out[0] = scale · Σ x[0..n), left on the device. */
  sumInto(x: Float32Array, n: number, out: Float32Array, scale: number): void {
    const bx = this.mirror.bind(x), bo = this.mirror.bind(out);
    const xs = bx.offset === 0 ? bx.handle : this.viewCopy(bx, n);
    const o = bo.offset === 0 ? bo.handle : this.viewCopy(bo, 1);
    this.k.sumInto(xs, n, o, 0);
    if (scale !== 1) this.k.scale(o, scale, o, 1);
    if (o !== bo.handle) {
      this.dev.copy(o, bo.handle, 1, 0, bo.offset);
      this.dev.release(o);
    }
    if (xs !== bx.handle) this.dev.release(xs);
    this.mirror.unbind(x, bx, false);
    this.mirror.unbind(out, bo, true);
  }

  copy(src: Float32Array, dst: Float32Array, n: number): void {
    const bs = this.mirror.bind(src), bd = this.mirror.bind(dst);
    this.dev.copy(bs.handle, bd.handle, n, bs.offset, bd.offset);
    this.mirror.unbind(src, bs, false);
    this.mirror.unbind(dst, bd, true);
  }

  counters(): WebGpuCounters {
    return { readbacks: this.dev.reads, deviceBuffers: this.dev.deviceBuffers, liveBuffers: this.dev.live };
  }

  private viewCopy(b: Bound, n: number): Handle {
    const tmp = this.dev.alloc(n);
    this.dev.copy(b.handle, tmp, n, b.offset, 0);
    return tmp;
  }
}

let bridge: Bridge | null = null;
let kernels: Kernels | null = null;

/** The webgpu Kernels (opening the adapter on first use); throws when no adapter is found. */
export function loadWebGpuKernels(): Kernels {
  if (kernels) return kernels;
  const b = (bridge = new Bridge(open()));
  const via = (name: string) => (...args: unknown[]) => b.call(name, args);
  const gemm = via('gemm') as Kernels['gemm'];
  const emulated = emulatedGemmBf16(gemm);
  const gemmBf16: Kernels['gemmBf16'] = (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) => {
    b.mirror.toHost(A, false);
    b.mirror.toHost(B, false);
    emulated(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  };
  const hostAttention = emulatedAttentionBf16(jsKernels.gemm);
  const k: Partial<Kernels> & Record<string, unknown> = {
    name: 'webgpu',
    blas: `webgpu (${adapter!.name})`,
    getThreads: () => 1,
    setThreads: () => {},
    gemm,
    sum: (x: Float32Array, n: number) => b.sum(x, n, false),
    sumSquares: (x: Float32Array, n: number) => b.sum(x, n, true),
    sumSquaresEachInto: (xs: readonly Float32Array[], sizes: readonly number[], out: Float32Array) => b.sumSquaresEachInto(xs, sizes, out),
    sumInto: (x: Float32Array, n: number, out: Float32Array, scale: number) => b.sumInto(x, n, out, scale),
    copy: (src: Float32Array, dst: Float32Array, n: number) => b.copy(src, dst, n),
    crossEntropyForward: (logits: Float32Array, targets: Int32Array, losses: Float32Array, lse: Float32Array, rows: number, V: number, ignoreIndex: number) => {
      b.call('crossEntropyForward', [logits, targets, losses, lse, rows, V, ignoreIndex]);
      let count = 0;
      for (let r = 0; r < rows; r++) if (targets[r] !== ignoreIndex) count++;
      return count;
    },
    // bf16 packing and the emulated bf16 product run on the host, on host copies.
    toBf16: (src: Float32Array, dst: Float32Array, n: number) => {
      b.mirror.toHost(src, false);
      b.mirror.toHost(dst, true);
      toBf16Packed(src, dst, n);
    },
    toBf16Rows: (src: Float32Array, dst: Float32Array, rows: number, cols: number, ld: number) => {
      b.mirror.toHost(src, false);
      b.mirror.toHost(dst, true);
      toBf16RowsPacked(src, dst, rows, cols, ld);
    },
    gemmBf16,
    // The product as gemmBf16 makes it on the device, read back and rounded on the host.
    gemmBf16ToBf16: emulatedGemmBf16ToBf16((...args) => {
      gemmBf16(...args);
      b.mirror.toHost(args[11], false);
    }, (C, writesAll) => {
      // The mirror tracks whole buffers: skip the device's copy only if none of it survives.
      if (writesAll && C.byteOffset === 0 && C.byteLength === C.buffer.byteLength) b.mirror.toHostForOverwrite(C);
      else b.mirror.toHost(C, true);
    }),
    hasBf16Gemm: () => false,
    attentionForwardBf16: (q, kk, v, out, stats, saved, B, T, H, D, scale) => {
      b.mirror.toHostMany([q, kk, v]);
      for (const w of [out, stats, saved]) b.mirror.toHostForOverwrite(w);
      hostAttention.attentionForwardBf16(q, kk, v, out, stats, saved, B, T, H, D, scale);
    },
    attentionBackwardBf16: (dout, saved, stats, dq, dk, dv, B, T, H, D, scale, accumulate) => {
      b.mirror.toHostMany([dout, saved, stats]);
      for (const w of [dq, dk, dv]) {
        if (w && accumulate) b.mirror.toHost(w, true);
        else if (w) b.mirror.toHostForOverwrite(w);
      }
      hostAttention.attentionBackwardBf16(dout, saved, stats, dq, dk, dv, B, T, H, D, scale, accumulate);
    },
    crossEntropyFused: (...args: Parameters<Kernels['crossEntropyFused']>) => composedCrossEntropyFused(k as Kernels, (src, dst, n) => {
      b.mirror.toHost(src, false);
      b.mirror.toHostForOverwrite(dst);
      widenBf16(src, dst, n);
    })(...args),
    dropoutApplyBf16: (...args: Parameters<Kernels['dropoutApplyBf16']>) => composedDropoutApplyBf16(k as Kernels)(...args),
    deviceMirror: b.mirror,
  };
  for (const name of Object.keys(OUTPUTS)) if (!(name in k)) k[name] = via(name);
  kernels = k as Kernels;
  return kernels;
}

/** The adapter the backend runs on, or null before it is opened. */
export function webGpuAdapter(): (AdapterReport & { name: string }) | null {
  return adapter;
}

/** Readbacks and device buffers so far, or null before the backend is opened. */
export function webGpuCounters(): WebGpuCounters | null {
  return bridge?.counters() ?? null;
}
