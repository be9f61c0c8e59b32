/**
 * Tensor: shape + contiguous storage (float32, or int32 for token ids) + what autodiff needs.
 *
 * Lifetime: tensors created inside `scope(fn)` are disposed when fn returns (except the ones it
 * returns or marks with `keep()`); their buffers go back to the pool. Parameters are created
 * outside any scope and live until disposed explicitly.
 *
 * On a device backend (webgpu) a float32 tensor's storage array also names a device buffer, and
 * the device copy is the current one while kernels work on it: ops hand `buf` to kernels (no
 * copy), and `data`, the host's way in, first brings the host copy up to date. Code that reads
 * or writes through `data` is therefore correct on every backend, only slower on a device.
 */
import { acquire, release } from './pool.ts';

/**
 * How a device backend keeps host arrays and device buffers coherent (the webgpu backend's
 * ./backends/webgpu/mirror.ts). Null on the CPU backends, where the host array is the data.
 */
export interface DeviceMirror {
  /** `data` became a tensor's storage; `content` is what its device buffer must start with. */
  adopt(data: Float32Array, content: 'garbage' | 'zeros' | 'host'): void;
  /** The host is about to read `data` (and to write it when `write`): copy the device's data back if it is newer. */
  toHost(data: Float32Array, write: boolean): void;
  /** toHost(a, false) for each array, in one readback. */
  toHostMany(data: readonly Float32Array[]): void;
  /** The host is about to overwrite every element of `data`: nothing needs reading back. */
  toHostForOverwrite(data: Float32Array): void;
  /** The tensor let go of `data`; `reuse` when the array goes back to the pool (its device buffer is kept with it). */
  disown(data: Float32Array, reuse: boolean): void;
  /** Brings every host copy up to date (before another backend takes over). */
  syncAll(): void;
}

let mirror: DeviceMirror | null = null;

/** Installs the active backend's mirror (null for a CPU backend), syncing the previous one's data to the host first. */
export function setDeviceMirror(m: DeviceMirror | null): void {
  if (mirror === m) return;
  mirror?.syncAll();
  mirror = m;
}

/** An array a backward received (or a Tensor.buf), brought up to date on the host for reading. */
export function hostArray(data: Float32Array): Float32Array {
  mirror?.toHost(data, false);
  return data;
}

/**
 * Brings the float32 tensors' data to the host for reading, on a device backend all in one
 * readback (reading them one by one through `data` or `item()` costs one readback each).
 */
export function toHostAll(tensors: readonly Tensor[]): void {
  if (mirror) mirror.toHostMany(tensors.filter((t) => t.dtype === 'float32').map((t) => t.buf));
}

/** Element i of an array a backward received, read on the host (a device copy is read back first). */
export function hostValue(data: Float32Array, i = 0): number {
  return hostArray(data)[i];
}

export type DType = 'float32' | 'int32';
type Data = Float32Array | Int32Array;

/** Backward of the op that produced a tensor: reads out.grad, accumulates into its inputs. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /**
   * The inputs whose values backward reads (all of them when absent). An intermediate no
   * backward reads gives its buffer back right after forward (releaseUnreadValues), as PyTorch
   * keeps only the tensors an op saves for backward. No backward reads its op's own output.
   */
  reads?: readonly Tensor[];
  backward(gradOut: Float32Array): void;
}

class Storage {
  constructor(public data: Data | null, public pooled: boolean) {}
}

const scopes: Set<Tensor>[] = [];
let gradEnabled = true;

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`Tensor: invalid shape ${shapeStr(shape)}: dimensions must be non-negative integers`);
  }
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  name: string | undefined;
  private storage: Storage;
  /** Its values were given back after forward (releaseValues); the tensor stays in the graph. */
  private released = false;
  /** Views share their base's storage but never release it. */
  private readonly ownsStorage: boolean;

  private constructor(shape: readonly number[], dtype: DType, storage: Storage, requiresGrad: boolean, ownsStorage = true) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = shapeSize(shape);
    this.storage = storage;
    this.ownsStorage = ownsStorage;
    this.requiresGrad = requiresGrad;
    const top = scopes[scopes.length - 1];
    if (top) top.add(this);
  }

  /** A float32 tensor from the pool; zero-filled unless `zero` is false (then contents are garbage). */
  static empty(shape: readonly number[], zero = true): Tensor {
    checkShape(shape);
    const data = acquire(shapeSize(shape), zero);
    mirror?.adopt(data, zero ? 'zeros' : 'garbage');
    return new Tensor(shape, 'float32', new Storage(data, true), false);
  }

  static zeros(shape: readonly number[]): Tensor {
    return Tensor.empty(shape, true);
  }

  /** Wraps (does not copy) a Float32Array or Int32Array. */
  static from(data: Float32Array | Int32Array | number[], shape?: readonly number[], dtype?: DType): Tensor {
    const arr = Array.isArray(data) ? (dtype === 'int32' ? Int32Array.from(data) : Float32Array.from(data)) : data;
    const sh = shape ?? [arr.length];
    checkShape(sh);
    if (shapeSize(sh) !== arr.length) {
      throw new Error(`Tensor.from: shape ${shapeStr(sh)} holds ${shapeSize(sh)} elements but the data has ${arr.length}`);
    }
    const dt: DType = arr instanceof Int32Array ? 'int32' : 'float32';
    if (arr instanceof Float32Array) mirror?.adopt(arr, 'host');
    return new Tensor(sh, dt, new Storage(arr, false), false);
  }

  static scalar(value: number): Tensor {
    return Tensor.from(new Float32Array([value]), []);
  }

  get disposed(): boolean {
    return this.storage.data === null;
  }

  /**
   * Float32 contents on the host, for reading and writing. Throws for int32 tensors and disposed
   * ones. On a device backend this first copies the device's data back when it is newer (one
   * synchronous readback), and the device copy is refreshed from the host when a kernel next
   * uses it; hand kernels `buf` instead.
   */
  get data(): Float32Array {
    const d = this.buf;
    mirror?.toHost(d, true);
    return d;
  }

  /**
   * The host array for code that writes every element (a re-initialisation): like `data`, but
   * on a device backend nothing is read back first.
   */
  overwrite(): Float32Array {
    const d = this.buf;
    mirror?.toHostForOverwrite(d);
    return d;
  }

  /**
   * The storage array as kernels take it, without bringing it to the host: on a device backend
   * its host contents may be stale, so only pass it to kernels (K()) or to backward functions.
   */
  get buf(): Float32Array {
    const d = this.storage.data;
    if (d === null) throw new Error(this.goneMessage());
    if (!(d instanceof Float32Array)) throw new Error(`Tensor ${shapeStr(this.shape)} is int32; a float32 tensor was expected`);
    return d;
  }

  /** Int32 contents (token ids). */
  get ints(): Int32Array {
    const d = this.storage.data;
    if (d === null) throw new Error(this.goneMessage());
    if (!(d instanceof Int32Array)) throw new Error(`Tensor ${shapeStr(this.shape)} is float32; an int32 tensor was expected`);
    return d;
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item(): tensor has shape ${shapeStr(this.shape)}, expected exactly one element`);
    return this.dtype === 'int32' ? this.ints[0] : hostValue(this.buf);
  }

  /** A view with another shape over the same storage (no copy). Gradients flow through. */
  view(shape: readonly number[]): Tensor {
    checkShape(shape);
    if (shapeSize(shape) !== this.size) {
      throw new Error(`view: cannot view shape ${shapeStr(this.shape)} as ${shapeStr(shape)} (${this.size} vs ${shapeSize(shape)} elements)`);
    }
    if (this.storage.data === null) void this.buf; // throws: disposed
    const out = new Tensor(shape, this.dtype, this.storage, false, false);
    const input: Tensor = this; // eslint-disable-line @typescript-eslint/no-this-alias -- captured by the backward closure
    if (recording(input)) {
      out.requiresGrad = true;
      out.node = {
        op: 'view',
        inputs: [input],
        backward(g) {
          const gi = gradBuffer(input);
          mirror?.toHost(g, false);
          if (gi) for (let i = 0; i < g.length; i++) gi[i] += g[i];
        },
      };
    }
    return out;
  }

  /** Remove this tensor from the enclosing scope so it survives it. */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }

  private goneMessage(): string {
    const what = `Tensor${this.name ? ` "${this.name}"` : ''} ${shapeStr(this.shape)}`;
    return this.released
      ? `${what}: its values were released after forward because no backward reads them (GradNode.reads), yet something read them`
      : `${what} was used after it was disposed`;
  }

  /**
   * Gives the values' buffer back to the pool while the tensor stays in the graph (its node and
   * gradient still work): for an intermediate no backward reads. Reading it afterwards throws.
   */
  releaseValues(): void {
    const st = this.storage;
    if (!this.ownsStorage || !st.pooled || !(st.data instanceof Float32Array)) return;
    mirror?.disown(st.data, st.pooled);
    release(st.data);
    st.data = null;
    this.released = true;
  }

  /** Return the buffer to the pool. Views of the same storage become unusable too. */
  dispose(): void {
    const st = this.storage;
    if (this.ownsStorage) {
      if (st.data instanceof Float32Array) mirror?.disown(st.data, st.pooled);
      if (st.data && st.pooled && st.data instanceof Float32Array) release(st.data);
      st.data = null;
    } else {
      this.storage = new Storage(null, false);
    }
    this.node = null;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /**
   * Reverse-mode autodiff from this scalar: accumulates .grad of every tensor that requires it,
   * seeded with d(this) = `seed` (1 by default; 1/n weights one of n micro-batches without an op).
   */
  backward(seed = 1): void {
    if (this.size !== 1) throw new Error(`backward(): called on a tensor of shape ${shapeStr(this.shape)}; it must be a scalar`);
    if (!this.requiresGrad) throw new Error('backward(): the tensor does not depend on anything that requires a gradient');
    const order = topologicalOrder(this);
    const g = gradBuffer(this)!;
    g[0] += seed;
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      if (!t.node || !t.grad) continue;
      t.node.backward(t.grad.buf);
      // An intermediate's gradient is dead once its producer has consumed it.
      t.grad.dispose();
      t.grad = null;
      t.node = null;
    }
  }
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    if (t.node) for (const inp of t.node.inputs) if (inp.requiresGrad && !seen.has(inp)) stack.push([inp, false]);
  }
  return order;
}

/**
 * The gradient buffer of `t` to accumulate into, created zero-filled on first use; null when `t`
 * does not require a gradient (a frozen weight: the caller then skips that product entirely).
 * A leaf's gradient (a parameter's) is kept outside scopes so it survives the step.
 */
export function gradBuffer(t: Tensor): Float32Array | null {
  if (!t.requiresGrad) return null;
  if (!t.grad) {
    const isLeaf = t.node === null;
    const g = isLeaf ? untracked(() => Tensor.zeros(t.shape)) : Tensor.zeros(t.shape);
    g.name = t.name ? `${t.name}.grad` : undefined;
    t.grad = g;
  }
  return t.grad.data;
}

/** True when an op on `inputs` must record a backward node. */
export function recording(...inputs: Tensor[]): boolean {
  return gradEnabled && inputs.some((t) => t.requiresGrad);
}

/** Run fn; dispose every tensor created inside except those returned (Tensor, array or object of them) and kept. */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Tensor>();
  scopes.push(mine);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of mine) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

function collectTensors(v: unknown, out: Set<Tensor>): void {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectTensors(x, out);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectTensors(x, out);
}

/** Create tensors that belong to no scope (parameters, optimizer state). */
export function untracked<T>(fn: () => T): T {
  const saved = scopes.splice(0, scopes.length);
  try {
    return fn();
  } finally {
    scopes.push(...saved);
  }
}

/** Run fn without recording backward nodes (evaluation, merges). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** A trainable (or frozen) leaf tensor owned by a module. */
export function parameter(shape: readonly number[], requiresGrad = true): Tensor {
  const t = untracked(() => Tensor.zeros(shape));
  t.requiresGrad = requiresGrad;
  return t;
}
