/**
 * The engine's kernels on WebGPU, over device-resident tensors. Names, argument order and
 * semantics are those of the Kernels interface (../kernels.ts; ../js.ts is the reference) with
 * GpuTensor in place of Float32Array; what returns a number there (sum, sumSquares) writes it to
 * a device slot here, so a step reads back once, at its end. Every call only records compute
 * passes; sizes are checked on the host before anything is recorded.
 *
 * Token ids and targets are validated when they are uploaded (`uploadIds`), since a shader cannot
 * throw.
 */
import { dropThreshold } from '../../rng.ts';
import { GpuDevice, type GpuTensor, type Param } from './device.ts';
import type { ShaderName } from './wgsl.ts';

/** What the kernels need to know of a device tensor: its element count and type. */
export interface DeviceTensor {
  readonly length: number;
  readonly dtype: 'float32' | 'int32';
}

/**
 * Where the kernels record their work: the device itself (GpuDevice, ./device.ts), or a
 * recorder on another thread that forwards the commands to it (./remote-device.ts).
 */
export interface CommandSink<T extends DeviceTensor> {
  /** The absent-output placeholder a shader with an optional output is bound to. */
  readonly none: T;
  alloc(n: number, dtype?: 'float32' | 'int32'): T;
  release(t: T): void;
  upload(data: Float32Array | Int32Array): T;
  fill(out: T, value: number, n: number): void;
  copy(src: T, dst: T, n: number, srcOffset?: number, dstOffset?: number): void;
  dispatch(shader: ShaderName, bindings: { t: T; write: boolean }[], params: Param[], groups: [number, number, number]): void;
  dispatch1d(shader: ShaderName, bindings: { t: T; write: boolean }[], params: Param[], n: number): void;
}

function need(kernel: string, what: string, t: DeviceTensor, n: number): void {
  if (t.length < n) throw new Error(`${kernel}: ${what} has ${t.length} elements, needs at least ${n}`);
}

function dims(kernel: string, d: Record<string, number>): void {
  for (const [k, v] of Object.entries(d)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${kernel}: ${k} must be a non-negative integer, got ${v}`);
  }
}

const r = <T>(t: T): { t: T; write: boolean } => ({ t, write: false });
const w = <T>(t: T): { t: T; write: boolean } => ({ t, write: true });

/** The kernels recording straight into a device this thread owns. */
export type DeviceKernels = WebGpuKernels<GpuTensor, GpuDevice>;

/** Element offsets of gemm's operands inside their buffers (the device form of `subarray`). */
export interface GemmOffsets {
  a?: number;
  b?: number;
  c?: number;
}

export class WebGpuKernels<T extends DeviceTensor = GpuTensor, D extends CommandSink<T> = CommandSink<T>> {
  readonly name = 'webgpu';
  /** Scratch for attention backward's per-row dot products, grown on demand. */
  private rowDot: T | null = null;

  constructor(readonly gpu: D) {}

  /** The kernels on a device opened in this thread. */
  static async open(): Promise<DeviceKernels> {
    return new WebGpuKernels(await GpuDevice.open());
  }

  /** Uploads token ids after checking each is in [0, limit) or equal to `allowed` (an ignore index). */
  uploadIds(ids: Int32Array, limit: number, what: string, allowed?: number): T {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id !== allowed && (id < 0 || id >= limit)) throw new Error(`${what}: id ${id} at position ${i} is outside [0, ${limit})`);
    }
    return this.gpu.upload(ids);
  }

  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: T, lda: number, strideA: number,
    B: T, ldb: number, strideB: number,
    beta: number, C: T, ldc: number, strideC: number, batch: number,
    offsets: GemmOffsets = {},
  ): void {
    const offA = offsets.a ?? 0, offB = offsets.b ?? 0, offC = offsets.c ?? 0;
    dims('gemm', { M, N, K, lda, ldb, ldc, strideA, strideB, strideC, batch, offA, offB, offC });
    if (M === 0 || N === 0 || batch === 0) return;
    const aRows = transA ? K : M, aCols = transA ? M : K;
    const bRows = transB ? N : K, bCols = transB ? K : N;
    if (lda < aCols || ldb < bCols || ldc < N) {
      throw new Error(`gemm: leading dimensions too small (lda=${lda} needs >= ${aCols}, ldb=${ldb} needs >= ${bCols}, ldc=${ldc} needs >= ${N})`);
    }
    if (aRows > 0) need('gemm', 'A', A, offA + (batch - 1) * strideA + (aRows - 1) * lda + aCols);
    if (bRows > 0) need('gemm', 'B', B, offB + (batch - 1) * strideB + (bRows - 1) * ldb + bCols);
    need('gemm', 'C', C, offC + (batch - 1) * strideC + (M - 1) * ldc + N);
    if (batch > 65535) throw new Error(`gemm: batch ${batch} exceeds 65535`);
    this.gpu.dispatch('gemm', [r(A), r(B), w(C)], [
      ['u', M], ['u', N], ['u', K], ['u', lda], ['u', ldb], ['u', ldc], ['u', strideA], ['u', strideB], ['u', strideC],
      ['u', offA], ['u', offB], ['u', offC], ['u', transA ? 1 : 0], ['u', transB ? 1 : 0], ['f', alpha], ['f', beta],
    ], [Math.ceil(N / 64), Math.ceil(M / 64), batch]);
  }

  add(a: T, b: T, out: T, n: number): void {
    this.binary('add', 'add', ['a', 'b', 'out'], a, b, out, n);
  }
  mul(a: T, b: T, out: T, n: number): void {
    this.binary('mul', 'mul', ['a', 'b', 'out'], a, b, out, n);
  }
  scale(a: T, s: number, out: T, n: number): void {
    need('scale', 'a', a, n); need('scale', 'out', out, n);
    this.gpu.dispatch1d('scale', [r(a), w(out)], [['f', s]], n);
  }
  axpy(alpha: number, x: T, y: T, n: number): void {
    need('axpy', 'x', x, n); need('axpy', 'y', y, n);
    this.gpu.dispatch1d('axpy', [r(x), w(y)], [['f', alpha]], n);
  }
  addScalar(out: T, value: number, n: number): void {
    need('addScalar', 'out', out, n);
    this.gpu.dispatch1d('addScalar', [w(out)], [['f', value]], n);
  }
  fill(out: T, value: number, n: number): void {
    need('fill', 'out', out, n);
    this.gpu.fill(out, value, n);
  }
  /** out[slot] = Σ x[0..n) (fp32 tree reduction). */
  sumInto(x: T, n: number, out: T, slot = 0): void {
    this.reduce('sum', x, n, out, slot, 0);
  }
  /** out[slot] = Σ x[0..n)²: one slot per tensor gives the gradient norm's partials. */
  sumSquaresInto(x: T, n: number, out: T, slot = 0): void {
    this.reduce('sumSquares', x, n, out, slot, 1);
  }

  embeddingForward(weight: T, ids: T, out: T, nIds: number, vocab: number, dim: number): void {
    need('embedding', 'weight', weight, vocab * dim); need('embedding', 'ids', ids, nIds); need('embedding', 'out', out, nIds * dim);
    this.gpu.dispatch1d('embeddingForward', [r(weight), r(ids), w(out)], [['u', dim]], nIds * dim);
  }
  embeddingBackward(dout: T, ids: T, dWeight: T, nIds: number, vocab: number, dim: number): void {
    need('embeddingBackward', 'dout', dout, nIds * dim); need('embeddingBackward', 'ids', ids, nIds);
    need('embeddingBackward', 'dWeight', dWeight, vocab * dim);
    this.gpu.dispatch1d('embeddingBackward', [r(dout), r(ids), w(dWeight)], [['u', nIds]], dim);
  }

  rmsnormForward(x: T, weight: T, out: T, rstd: T, rows: number, dim: number, eps: number): void {
    need('rmsnorm', 'x', x, rows * dim); need('rmsnorm', 'weight', weight, dim);
    need('rmsnorm', 'out', out, rows * dim); need('rmsnorm', 'rstd', rstd, rows);
    this.gpu.dispatch1d('rmsnormForward', [r(x), r(weight), w(out), w(rstd)], [['u', dim], ['f', eps]], rows);
  }
  rmsnormBackward(dout: T, x: T, weight: T, rstd: T, dx: T | null, dWeight: T | null, rows: number, dim: number): void {
    need('rmsnormBackward', 'dout', dout, rows * dim); need('rmsnormBackward', 'x', x, rows * dim);
    need('rmsnormBackward', 'weight', weight, dim); need('rmsnormBackward', 'rstd', rstd, rows);
    if (dWeight) {
      need('rmsnormBackward', 'dWeight', dWeight, dim);
      this.gpu.dispatch1d('rmsnormBackwardDw', [r(dout), r(x), r(rstd), w(dWeight)], [['u', rows]], dim);
    }
    if (dx) {
      need('rmsnormBackward', 'dx', dx, rows * dim);
      this.gpu.dispatch1d('rmsnormBackwardDx', [r(dout), r(x), r(weight), r(rstd), w(dx)], [['u', dim]], rows);
    }
  }

  ropeForward(x: T, cos: T, sin: T, out: T, B: number, T: number, H: number, D: number): void {
    this.rope('rope', x, cos, sin, out, B, T, H, D, 0);
  }
  ropeBackward(dout: T, cos: T, sin: T, dx: T, B: number, T: number, H: number, D: number): void {
    this.rope('ropeBackward', dout, cos, sin, dx, B, T, H, D, 1);
  }

  attentionForward(q: T, k: T, v: T, out: T, probs: T, B: number, T: number, H: number, D: number, scale: number): void {
    dims('attention', { B, T, H, D });
    const n = B * T * H * D;
    need('attention', 'q', q, n); need('attention', 'k', k, n); need('attention', 'v', v, n);
    need('attention', 'out', out, n); need('attention', 'probs', probs, B * H * T * T);
    this.gpu.dispatch1d('attentionForward', [r(q), r(k), r(v), w(out), w(probs)], [['u', T], ['u', H], ['u', D], ['f', scale]], B * H * T);
  }
  attentionBackward(
    dout: T, q: T, k: T, v: T, probs: T,
    dq: T | null, dk: T | null, dv: T | null,
    B: number, T: number, H: number, D: number, scale: number,
  ): void {
    dims('attentionBackward', { B, T, H, D });
    const n = B * T * H * D, rows = B * H * T;
    for (const [name, a] of [['dout', dout], ['q', q], ['k', k], ['v', v]] as const) need('attentionBackward', name, a, n);
    need('attentionBackward', 'probs', probs, rows * T);
    if (dq) need('attentionBackward', 'dq', dq, n);
    if (dk) need('attentionBackward', 'dk', dk, n);
    if (dv) need('attentionBackward', 'dv', dv, n);
    if (!this.rowDot || this.rowDot.length < rows) {
      if (this.rowDot) this.gpu.release(this.rowDot);
      this.rowDot = this.gpu.alloc(rows);
    }
    const none = this.gpu.none;
    this.gpu.dispatch1d('attentionBackwardQ', [r(dout), r(k), r(v), r(probs), w(this.rowDot), w(dq ?? none)],
      [['u', T], ['u', H], ['u', D], ['f', scale], ['u', dq ? 1 : 0]], rows);
    const want = (dk ? 1 : 0) | (dv ? 2 : 0);
    if (want) {
      this.gpu.dispatch1d('attentionBackwardKV', [r(dout), r(q), r(v), r(probs), r(this.rowDot), w(dk ?? none), w(dv ?? none)],
        [['u', T], ['u', H], ['u', D], ['f', scale], ['u', want]], rows);
    }
  }

  siluForward(x: T, out: T, n: number): void {
    need('silu', 'x', x, n); need('silu', 'out', out, n);
    this.gpu.dispatch1d('siluForward', [r(x), w(out)], [['u', 0]], n);
  }
  siluBackward(dout: T, x: T, dx: T, n: number): void {
    this.binary('siluBackward', 'siluBackward', ['dout', 'x', 'dx'], dout, x, dx, n);
  }
  swigluForward(gate: T, up: T, out: T, n: number): void {
    this.binary('swiglu', 'swigluForward', ['gate', 'up', 'out'], gate, up, out, n);
  }
  swigluBackward(dout: T, gate: T, up: T, dGate: T | null, dUp: T | null, n: number, accumulate: boolean): void {
    need('swigluBackward', 'dout', dout, n); need('swigluBackward', 'gate', gate, n); need('swigluBackward', 'up', up, n);
    if (dGate) need('swigluBackward', 'dGate', dGate, n);
    if (dUp) need('swigluBackward', 'dUp', dUp, n);
    const want = (dGate ? 1 : 0) | (dUp ? 2 : 0);
    if (!want) return;
    this.gpu.dispatch1d('swigluBackward', [r(dout), r(gate), r(up), w(dGate ?? this.gpu.none), w(dUp ?? this.gpu.none)], [['u', want | (accumulate ? 0 : 4)]], n);
  }

  /** The counter-based masks of ../../rng.ts: element i kept iff hash32(key, i) >= threshold. */
  dropoutMask(mask: T, n: number, key: number, threshold: number, scale: number): void {
    need('dropoutMask', 'mask', mask, n);
    this.gpu.dispatch1d('dropoutMask', [w(mask)], [['u', key], ['u', threshold], ['f', scale]], n);
  }
  dropoutApply(x: T, out: T, n: number, key: number, threshold: number, scale: number): void {
    need('dropoutApply', 'x', x, n); need('dropoutApply', 'out', out, n);
    this.gpu.dispatch1d('dropoutApply', [r(x), w(out)], [['u', key], ['u', threshold], ['f', scale]], n);
  }
  dropoutBackwardAdd(g: T, dx: T, n: number, key: number, threshold: number, scale: number): void {
    need('dropoutBackwardAdd', 'g', g, n); need('dropoutBackwardAdd', 'dx', dx, n);
    this.gpu.dispatch1d('dropoutBackwardAdd', [r(g), w(dx)], [['u', key], ['u', threshold], ['f', scale]], n);
  }

  /** Writes losses and lse; targets must have come through uploadIds (limit V, allowed ignoreIndex). */
  crossEntropyForward(logits: T, targets: T, losses: T, lse: T, rows: number, V: number, ignoreIndex: number): void {
    need('crossEntropy', 'logits', logits, rows * V); need('crossEntropy', 'targets', targets, rows);
    need('crossEntropy', 'losses', losses, rows); need('crossEntropy', 'lse', lse, rows);
    this.gpu.dispatch1d('crossEntropyForward', [r(logits), r(targets), w(losses), w(lse)], [['u', V], ['i', ignoreIndex]], rows);
  }
  crossEntropyBackward(logits: T, targets: T, lse: T, dLogits: T, rows: number, V: number, ignoreIndex: number, gradScale: number): void {
    this.crossEntropyGrad('crossEntropyBackward', logits, targets, lse, dLogits, rows, V, ignoreIndex, gradScale, 0);
  }
  /** Writes instead of adding; dLogits may be logits itself. */
  crossEntropyBackwardWrite(logits: T, targets: T, lse: T, dLogits: T, rows: number, V: number, ignoreIndex: number, gradScale: number): void {
    this.crossEntropyGrad('crossEntropyBackwardWrite', logits, targets, lse, dLogits, rows, V, ignoreIndex, gradScale, 1);
  }

  adamwStep(
    param: T, grad: T, m: T, v: T, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number,
  ): void {
    need('adamw', 'param', param, n); need('adamw', 'grad', grad, n); need('adamw', 'm', m, n); need('adamw', 'v', v, n);
    this.gpu.dispatch1d('adamwStep', [w(param), r(grad), w(m), w(v)], [
      ['f', lr], ['f', beta1], ['f', beta2], ['f', eps], ['f', 1 - lr * weightDecay], ['f', lr / bc1], ['f', Math.sqrt(bc2)], ['f', gradScale],
    ], n);
  }

  /**
   * The optimizer reset's random pruning (src/relora/prune.ts): entry i is zeroed unless the
   * uniform draw u_i = (hash32(key, i) >> 8)·2^-24 of RandomStream.uniform is above p.
   */
  pruneRandom(x: T, n: number, key: number, p: number): void {
    need('pruneRandom', 'x', x, n);
    if (!(p >= 0 && p <= 1)) throw new Error(`pruneRandom: ratio must be in [0, 1], got ${p}`);
    // u > p  <=>  (h >> 8) > p·2^24  <=>  (h >> 8) > floor(p·2^24) for the integer h >> 8.
    this.gpu.dispatch1d('pruneRandom', [w(x)], [['u', key], ['u', Math.min(0xffffffff, Math.floor(p * 16777216))]], n);
  }

  /** The dropout threshold the CPU backends use for probability p. */
  static dropThreshold(p: number): number {
    return dropThreshold(p);
  }

  /** A parameterless elementwise shader reading two tensors and writing (or accumulating into) a third. */
  private binary(kernel: string, shader: ShaderName, names: [string, string, string], a: T, b: T, out: T, n: number): void {
    need(kernel, names[0], a, n); need(kernel, names[1], b, n); need(kernel, names[2], out, n);
    this.gpu.dispatch1d(shader, [r(a), r(b), w(out)], [['u', 0]], n);
  }

  private reduce(kernel: string, x: T, n: number, out: T, slot: number, squares: number): void {
    need(kernel, 'x', x, n); need(kernel, 'out', out, slot + 1);
    this.gpu.dispatch('reduce', [r(x), w(out)], [['u', n], ['u', squares], ['u', slot]], [1, 1, 1]);
  }

  private rope(kernel: string, x: T, cos: T, sin: T, out: T, B: number, T: number, H: number, D: number, backward: number): void {
    dims(kernel, { B, T, H, D });
    if (D % 2 !== 0) throw new Error(`${kernel}: head dimension ${D} must be even`);
    const half = D / 2, n = B * T * H * D;
    need(kernel, 'x', x, n); need(kernel, 'out', out, n); need(kernel, 'cos', cos, T * half); need(kernel, 'sin', sin, T * half);
    this.gpu.dispatch1d('rope', [r(x), r(cos), r(sin), w(out)], [['u', T], ['u', H], ['u', D], ['u', backward]], n / 2);
  }

  private crossEntropyGrad(kernel: string, logits: T, targets: T, lse: T, dLogits: T, rows: number, V: number, ignoreIndex: number, gradScale: number, write: number): void {
    need(kernel, 'logits', logits, rows * V); need(kernel, 'targets', targets, rows); need(kernel, 'lse', lse, rows); need(kernel, 'dLogits', dLogits, rows * V);
    this.gpu.dispatch1d('crossEntropyBackward', [r(logits), r(targets), r(lse), w(dLogits)], [['u', V], ['i', ignoreIndex], ['f', gradScale], ['u', write]], rows * V);
  }
}
