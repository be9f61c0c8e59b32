/**
 * What the synchronous WebGPU backend (./bridge.ts) and the worker that owns the device
 * (./bridge-worker.ts) say to each other. The training thread records commands against handles
 * (numbers naming device buffers) and posts them in batches without waiting; it blocks on a
 * SharedArrayBuffer only when it reads data back.
 */
import type { Param } from './device.ts';
import type { ShaderName } from './wgsl.ts';

/** Per kernel: the argument positions it writes or accumulates into. */
export const OUTPUTS: Record<string, readonly number[]> = {
  gemm: [13],
  add: [2], mul: [2], scale: [2], axpy: [2], addScalar: [0], fill: [0],
  sum: [], sumSquares: [],
  embeddingForward: [2], embeddingBackward: [2],
  rmsnormForward: [2, 3], rmsnormBackward: [4, 5],
  ropeForward: [3], ropeBackward: [3],
  attentionForward: [3, 4], attentionBackward: [5, 6, 7],
  siluForward: [1], siluBackward: [2], swigluForward: [2], swigluBackward: [3, 4],
  dropoutMask: [0], dropoutApply: [1], dropoutBackwardAdd: [1],
  crossEntropyForward: [2, 3], crossEntropyBackward: [3], crossEntropyBackwardWrite: [3],
  adamwStep: [0, 2, 3],
};

/** A binding of a dispatch: the handle and whether the shader writes it. */
export type BoundHandle = [handle: number, write: boolean];

/** One recorded device command. Handle 0 is the device's absent-output placeholder. */
export type Command =
  | { op: 'alloc'; handle: number; n: number; dtype: 'float32' | 'int32' }
  | { op: 'release'; handle: number }
  /** Creates `handle` holding a copy of `data`. */
  | { op: 'upload'; handle: number; data: Float32Array | Int32Array }
  /** Overwrites the start of an existing handle's buffer. */
  | { op: 'write'; handle: number; data: Float32Array | Int32Array }
  | { op: 'fill'; handle: number; value: number; n: number }
  | { op: 'copy'; src: number; dst: number; n: number; srcOffset: number; dstOffset: number }
  | { op: 'dispatch'; shader: ShaderName; bindings: BoundHandle[]; params: Param[]; groups: [number, number, number] }
  | { op: 'dispatch1d'; shader: ShaderName; bindings: BoundHandle[]; params: Param[]; n: number }
  /**
   * Copies handle[offset..offset+n) into `reply`, `at` bytes after the header, and signals the
   * reply when `last` (several reads answered by one wake-up).
   */
  | { op: 'read'; handle: number; offset: number; n: number; reply: SharedArrayBuffer; at: number; last: boolean };

export interface BatchMessage {
  kind: 'batch';
  commands: Command[];
}

/**
 * Header of a reply buffer, in 8-byte words: status, then a value (for a read: the storage
 * buffers the device has created so far), then the error length.
 */
export const REPLY_HEADER_BYTES = 24;
export const STATUS_PENDING = 0;
export const STATUS_OK = 1;
export const STATUS_ERROR = 2;
