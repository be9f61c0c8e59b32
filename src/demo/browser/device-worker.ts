/**
 * The demo's device worker: owns the WebGPU device and answers the training worker's kernel
 * calls. It runs the Node bridge's own worker (engine/backends/webgpu/bridge-worker.ts), whose
 * `node:worker_threads` the bundle maps to the browser stand-in (browser-threads.ts); that module
 * is evaluated only once the training worker's first message has said where to reply.
 */
import { acceptBridge, failBridge, type BridgePort } from '../../engine/backends/webgpu/browser-threads.ts';

const worker = globalThis as unknown as { onmessage: ((event: { data: { port: BridgePort } }) => void) | null };

worker.onmessage = ({ data }) => {
  worker.onmessage = null;
  acceptBridge(data.port)
    .then(() => import('../../engine/backends/webgpu/bridge-worker.ts'))
    .catch((err: unknown) => failBridge(`WebGPU: the device worker failed to start: ${err instanceof Error ? err.message : String(err)}`));
};
