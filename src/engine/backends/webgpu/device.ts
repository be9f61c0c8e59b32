/// <reference types="@webgpu/types" />
/**
 * Device memory and command submission for the WebGPU kernels: tensors that live in GPU
 * buffers (`GpuTensor`), a buffer pool keyed by exact size like the CPU one (../../pool.ts), so
 * a steady-state step allocates no buffers, and a command stream that records compute passes and
 * submits them in batches. Nothing is read back until `read` is awaited: the one asynchronous
 * point, where WebGPU requires it.
 */
import { requestGpu, type AdapterReport, type GpuHandle } from './gpu.ts';
import { WGSL, type ShaderName } from './wgsl.ts';

/** A tensor in device memory: `length` elements of fp32 (or int32 token ids) from offset 0. */
export interface GpuTensor {
  readonly buffer: GPUBuffer;
  readonly length: number;
  readonly dtype: 'float32' | 'int32';
}

/** One bound buffer of a dispatch; `write` marks it read_write in the shader. */
interface Binding {
  t: GpuTensor;
  write: boolean;
}

// Uniform parameters: up to 16 four-byte scalars per dispatch, each dispatch in its own
// 256-byte slot (the minimum uniform offset alignment) of a ring written once per submit.
const SLOT_BYTES = 256;
const RING_SLOTS = 512;
const PARAM_WORDS = 16;

export type Param = ['u' | 'i' | 'f', number];

export class GpuDevice {
  readonly device: GPUDevice;
  readonly adapter: AdapterReport;
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly stagingFree = new Map<number, GPUBuffer[]>();
  private pooled = 0;
  private readonly pipelines = new Map<ShaderName, GPUComputePipeline>();
  private readonly ring: GPUBuffer;
  private readonly ringWords = new ArrayBuffer(SLOT_BYTES * RING_SLOTS);
  private readonly ringU32 = new Uint32Array(this.ringWords);
  private readonly ringI32 = new Int32Array(this.ringWords);
  private readonly ringF32 = new Float32Array(this.ringWords);
  private slot = 0;
  private encoder: GPUCommandEncoder | null = null;
  /** Buffers released while commands were being recorded: back to the pool once those are submitted. */
  private afterSubmit: GpuTensor[] = [];
  private readonly dummy: GpuTensor;
  /** Dispatches recorded since creation (for tests and the benchmark). */
  dispatches = 0;
  /** Storage buffers created since creation: flat once the pool serves a steady-state step. */
  buffersCreated = 0;

  private constructor(h: GpuHandle) {
    this.device = h.device;
    this.adapter = h.adapter;
    this.ring = this.device.createBuffer({ size: SLOT_BYTES * RING_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.dummy = this.alloc(1);
  }

  /** Opens the adapter (see ./gpu.ts); throws with the reason when there is none. */
  static async open(): Promise<GpuDevice> {
    return new GpuDevice(await requestGpu());
  }

  /** A pooled buffer of n elements; contents are garbage (use `zeros` or write every element). */
  alloc(n: number, dtype: 'float32' | 'int32' = 'float32'): GpuTensor {
    if (!Number.isInteger(n) || n < 0) throw new Error(`GpuDevice.alloc: length must be a non-negative integer, got ${n}`);
    const bytes = Math.max(4, n * 4);
    if (bytes > this.adapter.maxStorageBufferBindingSize) {
      throw new Error(`GpuDevice.alloc: ${n} elements (${bytes} bytes) exceed the adapter's largest storage binding (${this.adapter.maxStorageBufferBindingSize} bytes)`);
    }
    const buffer = this.free.get(bytes)?.pop();
    if (buffer) {
      this.pooled -= bytes;
      return { buffer, length: n, dtype };
    }
    const fresh = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    this.buffersCreated++;
    return { buffer: fresh, length: n, dtype };
  }

  zeros(n: number): GpuTensor {
    const t = this.alloc(n);
    this.fill(t, 0, n);
    return t;
  }

  /**
   * Copies host data into a new device tensor. No work recorded so far can use its buffer (a
   * buffer released while commands are pending returns to the pool only once they are
   * submitted), so the write needs no submit first: it lands after the work already submitted.
   */
  upload(data: Float32Array | Int32Array): GpuTensor {
    const t = this.alloc(data.length, data instanceof Int32Array ? 'int32' : 'float32');
    if (data.length > 0) this.device.queue.writeBuffer(t.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return t;
  }

  /** Overwrites t[0..data.length) with host data (ordered after everything recorded so far). */
  write(t: GpuTensor, data: Float32Array | Int32Array): void {
    if (data.length > t.length) throw new Error(`GpuDevice.write: ${data.length} elements do not fit a tensor of ${t.length}`);
    this.flush();
    if (data.length > 0) this.device.queue.writeBuffer(t.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Returns t's buffer to the pool (once recorded work that may use it is submitted); t must not be used afterwards. */
  release(t: GpuTensor): void {
    if (this.encoder) {
      this.afterSubmit.push(t);
      return;
    }
    const bytes = t.buffer.size;
    let list = this.free.get(bytes);
    if (!list) this.free.set(bytes, (list = []));
    list.push(t.buffer);
    this.pooled += bytes;
  }

  /** Bytes parked in the pool. */
  pooledBytes(): number {
    return this.pooled;
  }

  /** Submits everything recorded, then copies t[offset..offset+n) to the host: the one asynchronous step. */
  async read(t: GpuTensor, n = t.length, offset = 0): Promise<Float32Array | Int32Array> {
    if (offset + n > t.length) throw new Error(`GpuDevice.read: ${n} elements from ${offset} asked of a tensor of ${t.length}`);
    const bytes = Math.max(4, n * 4);
    const staging = this.stagingFree.get(bytes)?.pop() ?? this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.commands();
    enc.copyBufferToBuffer(t.buffer, offset * 4, staging, 0, n === 0 ? 0 : bytes);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const src = staging.getMappedRange(0, bytes);
    const out = t.dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
    out.set(t.dtype === 'int32' ? new Int32Array(src, 0, n) : new Float32Array(src, 0, n));
    staging.unmap();
    let list = this.stagingFree.get(bytes);
    if (!list) this.stagingFree.set(bytes, (list = []));
    list.push(staging);
    return out;
  }

  async readFloats(t: GpuTensor, n = t.length, offset = 0): Promise<Float32Array> {
    if (t.dtype !== 'float32') throw new Error('GpuDevice.readFloats: the tensor holds int32');
    return (await this.read(t, n, offset)) as Float32Array;
  }

  /** Submits the recorded passes (reads and writes do this themselves). */
  flush(): void {
    if (!this.encoder) return;
    this.device.queue.writeBuffer(this.ring, 0, this.ringWords, 0, this.slot * SLOT_BYTES);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.slot = 0;
    for (const t of this.afterSubmit) this.release(t);
    this.afterSubmit.length = 0;
  }

  /** Copies n elements of src (from srcOffset) into dst (at dstOffset), recorded in order. */
  copy(src: GpuTensor, dst: GpuTensor, n: number, srcOffset = 0, dstOffset = 0): void {
    if (srcOffset + n > src.length || dstOffset + n > dst.length) {
      throw new Error(`GpuDevice.copy: ${n} elements from ${srcOffset} of ${src.length} to ${dstOffset} of ${dst.length} are out of bounds`);
    }
    if (n > 0) this.commands().copyBufferToBuffer(src.buffer, srcOffset * 4, dst.buffer, dstOffset * 4, n * 4);
  }

  /** The absent-output placeholder a shader with an optional output is bound to. */
  get none(): GpuTensor {
    return this.dummy;
  }

  /** Records one compute pass of `shader` over a grid of workgroups. */
  dispatch(shader: ShaderName, bindings: Binding[], params: Param[], groups: [number, number, number]): void {
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    if (this.slot === RING_SLOTS) this.flush();
    const enc = this.commands();
    // WebGPU forbids a writable buffer bound twice in one pass: read a copy of the aliased input.
    const bound = bindings.map((b, i) => {
      if (b.write || b.t === this.dummy) return b.t;
      if (!bindings.some((o, j) => j !== i && o.write && o.t.buffer === b.t.buffer)) return b.t;
      const tmp = this.alloc(b.t.length, b.t.dtype);
      enc.copyBufferToBuffer(b.t.buffer, 0, tmp.buffer, 0, tmp.buffer.size);
      this.afterSubmit.push(tmp);
      return tmp;
    });
    const base = this.slot * (SLOT_BYTES / 4);
    if (params.length > PARAM_WORDS) throw new Error(`GpuDevice.dispatch(${shader}): ${params.length} parameters, at most ${PARAM_WORDS}`);
    params.forEach(([kind, v], k) => {
      if (kind === 'f') this.ringF32[base + k] = v;
      else if (kind === 'i') this.ringI32[base + k] = v;
      else this.ringU32[base + k] = v >>> 0;
    });
    const pipeline = this.pipeline(shader);
    const entries: GPUBindGroupEntry[] = bound.map((t, binding) => ({ binding, resource: { buffer: t.buffer } }));
    entries.push({ binding: bound.length, resource: { buffer: this.ring, offset: this.slot * SLOT_BYTES, size: PARAM_WORDS * 4 } });
    this.slot++;
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
    this.dispatches++;
  }

  /** A 1-D dispatch over n invocations, 256 per workgroup. */
  dispatch1d(shader: ShaderName, bindings: Binding[], params: Param[], n: number): void {
    const groups = Math.ceil(n / 256);
    const x = Math.min(groups, 65535);
    this.dispatch(shader, bindings, [['u', n], ...params], [x, x === 0 ? 0 : Math.ceil(groups / x), 1]);
  }

  fill(out: GpuTensor, value: number, n: number): void {
    this.dispatch1d('fill', [{ t: out, write: true }], [['f', value]], n);
  }

  /** Surfaces a device error (a shader that failed to compile, an invalid dispatch) as an Error. */
  async check(): Promise<void> {
    this.device.pushErrorScope('validation');
    this.flush();
    const err = await this.device.popErrorScope();
    if (err) throw new Error(`WebGPU validation error: ${err.message}`);
  }

  destroy(): void {
    this.flush();
    this.device.destroy();
  }

  private commands(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private pipeline(name: ShaderName): GPUComputePipeline {
    let p = this.pipelines.get(name);
    if (!p) {
      const module = this.device.createShaderModule({ code: WGSL[name] });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(name, p);
    }
    return p;
  }
}
