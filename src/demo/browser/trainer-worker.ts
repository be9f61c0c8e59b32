/**
 * The demo's training worker: runs the DemoTrainer off the page's main thread and posts a record
 * per update. On WebGPU the engine's synchronous kernel calls block here (Atomics.wait, allowed
 * in a worker, never on a page's main thread) until the device worker has answered; when the
 * device cannot be opened, training runs on the js backend and the page is told why.
 */
import { backendInfo, setBackend } from '../../engine/backend.ts';
import { connectBridge } from '../../engine/backends/webgpu/browser-threads.ts';
import { DEMO_TEXT } from '../text.ts';
import { DemoTrainer } from '../trainer.ts';
import type { FromTrainer, ToTrainer } from './messages.ts';

const worker = globalThis as unknown as {
  onmessage: ((event: { data: ToTrainer }) => void) | null;
  postMessage(message: FromTrainer): void;
};
const post = (m: FromTrainer): void => worker.postMessage(m);
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Opens the backend the page asked for; WebGPU that fails to open falls back to js, with the reason. */
function openBackend(start: Extract<ToTrainer, { kind: 'start' }>): FromTrainer & { kind: 'backend' } {
  let fallback = start.reason ?? 'the page asked for js';
  if (start.backend === 'webgpu' && start.port) {
    try {
      connectBridge(start.port);
      setBackend('webgpu');
      return { kind: 'backend', backend: 'webgpu', kernels: backendInfo().blas, fallback: null };
    } catch (err) {
      fallback = `the WebGPU device could not be opened (${message(err)})`;
    }
  }
  setBackend('js');
  return { kind: 'backend', backend: 'js', kernels: backendInfo().blas, fallback };
}

let trainer: DemoTrainer | null = null;
let sampleLength = 120;

function tick(): void {
  try {
    const t = trainer!;
    post({ kind: 'record', record: t.step(), total: t.totalSteps });
    if (!t.done) {
      // Yield between updates so sampling requests are answered while training runs.
      setTimeout(tick, 0);
      return;
    }
    post({ kind: 'sample', text: t.sample('the ', sampleLength) });
    post({ kind: 'done' });
  } catch (err) {
    post({ kind: 'error', message: message(err) });
  }
}

worker.onmessage = ({ data }) => {
  try {
    if (data.kind === 'start') {
      post(openBackend(data));
      const { sample, ...lengths } = data.lengths;
      sampleLength = sample;
      trainer = new DemoTrainer({ text: DEMO_TEXT, ...lengths });
      setTimeout(tick, 0);
    } else if (trainer) {
      post({ kind: 'sample', text: trainer.sample(data.prompt, sampleLength) });
    }
  } catch (err) {
    post({ kind: 'error', message: message(err) });
  }
};
