/**
 * The demo's device worker: owns the WebGPU device and answers the training worker's kernel
 * calls. It runs the Node bridge's own worker (engine/backends/webgpu/bridge-worker.ts), whose
 * `node:worker_threads` the bundle maps to the browser stand-in (browser-threads.ts); that module
 * is evaluated only once the training worker's first message has said where to reply.
 */
import { acceptBridge, failBridge, type BridgePort } from '../../engine/backends/webgpu/browser-threads.ts';

const worker = globalThis as unknown as {
  onmessage: ((event: { data: { port: BridgePort } }) => void) | null;
  navigator: { gpu?: unknown };
};

worker.onmessage = ({ data }) => {
  worker.onmessage = null;
  acceptBridge(data.port)
    .then(async () => {
      // A browser may offer WebGPU to pages but not to workers; say so, rather than letting the
      // engine look for Node's Dawn package.
      if (!worker.navigator.gpu) throw new Error('this browser offers no WebGPU in workers (navigator.gpu is missing there)');
      await import('../../engine/backends/webgpu/bridge-worker.ts');
    })
    .catch((err: unknown) => failBridge(`WebGPU: the device worker failed to start: ${err instanceof Error ? err.message : String(err)}`));
};
