/**
 * What the demo page and its training worker (./trainer-worker.ts) say to each other. The page
 * chooses the backend it asks for; the worker answers with the one it actually opened.
 */
import type { DemoRecord } from '../trainer.ts';

/** Lengths of the run and of its samples, from the page's query string (`?warm=&cycle=&cycles=&sample=`). */
export interface RunLengths {
  warmStartSteps: number;
  cycleLength: number;
  cycles: number;
  /** Characters per sample. */
  sample: number;
}

export type ToTrainer =
  /** `port` reaches the device worker when WebGPU is asked for; `reason` says why js was chosen otherwise. */
  | { kind: 'start'; backend: 'webgpu' | 'js'; reason: string | null; port: MessagePort | null; lengths: RunLengths }
  | { kind: 'sample'; prompt: string };

export type FromTrainer =
  /** The backend training runs on; `fallback` says why it is js when WebGPU was asked for. */
  | { kind: 'backend'; backend: 'webgpu' | 'js'; kernels: string; fallback: string | null }
  | { kind: 'record'; record: DemoRecord; total: number }
  | { kind: 'sample'; text: string }
  | { kind: 'done' }
  | { kind: 'error'; message: string };
