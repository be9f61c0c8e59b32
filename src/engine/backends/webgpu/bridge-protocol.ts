/**
 * What the synchronous WebGPU backend (./bridge.ts) and its worker (./bridge-worker.ts) say to
 * each other. A call's outputs come back through a SharedArrayBuffer the caller blocks on.
 */

/** Per kernel: the argument positions it writes or accumulates into (read back after the call). */
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

export type Arg = Float32Array | Int32Array | number | boolean | null;

export interface CallMessage {
  kind: 'call';
  kernel: string;
  args: Arg[];
  /** Where the outputs and the status go: [status, result value, error length, ...payload]. */
  reply: SharedArrayBuffer;
}

/** Header of a reply buffer, in 8-byte words: status, then the returned number, then the error length. */
export const REPLY_HEADER_BYTES = 24;
export const STATUS_PENDING = 0;
export const STATUS_OK = 1;
export const STATUS_ERROR = 2;
