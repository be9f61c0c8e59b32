/**
 * The device as the training thread sees it: WebGpuKernels (./kernels.ts) record into this
 * exactly as into the device itself, but every allocation, upload and compute pass becomes a
 * command for the worker that owns the device (./bridge-worker.ts). Commands go out in batches
 * without waiting; only `read` blocks, until the worker has run everything before it and copied
 * the data back. Buffers are named by handles; the worker keeps them in its pool.
 */
import type { Param } from './device.ts';
import { REPLY_HEADER_BYTES, STATUS_PENDING, type BatchMessage, type Command } from './bridge-protocol.ts';
import type { CommandSink, DeviceTensor } from './kernels.ts';
import type { ShaderName } from './wgsl.ts';

/** A device buffer named by its handle; `length` may be less than the buffer (a view from its start). */
export interface Handle extends DeviceTensor {
  readonly id: number;
}

const TRACE_READS = typeof process !== 'undefined' && Boolean(process.env?.RELORA_WEBGPU_TRACE_READS);

/** Commands recorded before a batch is posted: enough to keep the worker busy, few enough to bound the latency. */
const BATCH = 256;

/** How the recorder reaches the worker (a Node worker thread, or a browser worker's port). */
export interface CommandChannel {
  post(message: BatchMessage, transfer: ArrayBuffer[]): void;
  /** Blocks until the worker has answered a read posted with `reply`; returns the header's value. */
  wait(reply: SharedArrayBuffer, what: string): number;
}

export class RemoteDevice implements CommandSink<Handle> {
  readonly none: Handle = { id: 0, length: 1, dtype: 'float32' };
  private nextId = 1;
  private commands: Command[] = [];
  private transfer: ArrayBuffer[] = [];
  private reply: SharedArrayBuffer | null = null;
  /** Handles alive now (allocated and not released). */
  live = 0;
  /** Storage buffers the device had created at the last read (its pool's growth). */
  deviceBuffers = 0;
  /** Reads so far: each one blocks this thread until the device has caught up. */
  reads = 0;

  constructor(private readonly channel: CommandChannel) {}

  alloc(n: number, dtype: 'float32' | 'int32' = 'float32'): Handle {
    if (!Number.isInteger(n) || n < 0) throw new Error(`WebGPU: a buffer length must be a non-negative integer, got ${n}`);
    const h = { id: this.nextId++, length: n, dtype };
    this.live++;
    this.record({ op: 'alloc', handle: h.id, n, dtype });
    return h;
  }

  release(t: Handle): void {
    this.live--;
    this.record({ op: 'release', handle: t.id });
  }

  /** A new buffer holding a copy of `data` (copied now: the caller may change `data` afterwards). */
  upload(data: Float32Array | Int32Array): Handle {
    const h = { id: this.nextId++, length: data.length, dtype: data instanceof Int32Array ? 'int32' as const : 'float32' as const };
    this.live++;
    this.record({ op: 'upload', handle: h.id, data: this.copyOf(data) });
    return h;
  }

  /** Overwrites t[0..data.length) with a copy of `data`. */
  write(t: Handle, data: Float32Array | Int32Array): void {
    if (data.length > t.length) throw new Error(`WebGPU: ${data.length} elements do not fit a buffer of ${t.length}`);
    this.record({ op: 'write', handle: t.id, data: this.copyOf(data) });
  }

  fill(out: Handle, value: number, n: number): void {
    this.record({ op: 'fill', handle: out.id, value, n });
  }

  copy(src: Handle, dst: Handle, n: number, srcOffset = 0, dstOffset = 0): void {
    if (srcOffset + n > src.length || dstOffset + n > dst.length) {
      throw new Error(`WebGPU copy: ${n} elements from ${srcOffset} of ${src.length} to ${dstOffset} of ${dst.length} are out of bounds`);
    }
    if (n > 0) this.record({ op: 'copy', src: src.id, dst: dst.id, n, srcOffset, dstOffset });
  }

  dispatch(shader: ShaderName, bindings: { t: Handle; write: boolean }[], params: Param[], groups: [number, number, number]): void {
    this.record({ op: 'dispatch', shader, bindings: bindings.map((b) => [b.t.id, b.write]), params, groups });
  }

  dispatch1d(shader: ShaderName, bindings: { t: Handle; write: boolean }[], params: Param[], n: number): void {
    this.record({ op: 'dispatch1d', shader, bindings: bindings.map((b) => [b.t.id, b.write]), params, n });
  }

  /** Runs everything recorded, then copies t[offset..offset+n) into `into`: the one blocking call. */
  read(t: Handle, offset: number, n: number, into: Float32Array | Int32Array): void {
    this.readMany([{ t, offset, n, into }]);
  }

  /** Several reads, answered together: one synchronous readback. */
  readMany(reads: readonly { t: Handle; offset: number; n: number; into: Float32Array | Int32Array }[]): void {
    if (reads.length === 0) return;
    let bytes = 0;
    for (const { t, offset, n, into } of reads) {
      if (offset + n > t.length || into.length < n) throw new Error(`WebGPU read: ${n} elements from ${offset} of a buffer of ${t.length} into ${into.length}`);
      bytes += n * 4;
    }
    const size = REPLY_HEADER_BYTES + Math.max(bytes, 1024);
    if (!this.reply || this.reply.byteLength < size) this.reply = new SharedArrayBuffer(Math.max(size, (this.reply?.byteLength ?? 0) * 2));
    const reply = this.reply;
    this.reads++;
    // RELORA_WEBGPU_TRACE_READS=1 prints where each readback comes from (finding a host read in a step).
    if (TRACE_READS) console.error(`webgpu read of ${bytes / 4} elements: ${new Error().stack}`);
    new Int32Array(reply, 0, 1)[0] = STATUS_PENDING;
    let at = 0;
    reads.forEach(({ t, offset, n }, i) => {
      this.commands.push({ op: 'read', handle: t.id, offset, n, reply, at, last: i === reads.length - 1 });
      at += n * 4;
    });
    this.post();
    this.deviceBuffers = this.channel.wait(reply, 'a read');
    at = 0;
    for (const { n, into } of reads) {
      into.set(into instanceof Int32Array ? new Int32Array(reply, REPLY_HEADER_BYTES + at, n) : new Float32Array(reply, REPLY_HEADER_BYTES + at, n));
      at += n * 4;
    }
  }

  /** Posts what is recorded so far. */
  post(): void {
    if (this.commands.length === 0) return;
    this.channel.post({ kind: 'batch', commands: this.commands }, this.transfer);
    this.commands = [];
    this.transfer = [];
  }

  private record(c: Command): void {
    this.commands.push(c);
    if (this.commands.length >= BATCH) this.post();
  }

  private copyOf(data: Float32Array | Int32Array): Float32Array | Int32Array {
    const c = data.slice();
    this.transfer.push(c.buffer);
    return c;
  }
}
