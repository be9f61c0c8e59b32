/**
 * The demo page (bundled by `relora demo`): trains a tiny LLaMA with ReLoRA on the built-in text,
 * in the tab, showing the loss curve, learning rate, merges and the rank of the accumulated
 * update live, and samples text on request. Training runs in a worker (./trainer-worker.ts); on
 * WebGPU a second worker owns the device (./device-worker.ts) and the two talk over a
 * MessageChannel and shared memory, so the page must be cross-origin isolated. Without WebGPU or
 * isolation it trains on the js backend and says why. `?backend=js` asks for js; `?warm=`,
 * `?cycle=`, `?cycles=` and `?sample=` set the run's and the samples' lengths.
 * `window.reloraDemo` exposes what the page shows (the headless-browser test reads it).
 */
/// <reference lib="dom" />
import type { DemoRecord } from '../trainer.ts';
import type { FromTrainer, ToTrainer } from './messages.ts';

interface DemoState {
  records: DemoRecord[];
  done: boolean;
  /** The backend training runs on, as the training worker reports it; null until it has said. */
  backend: 'webgpu' | 'js' | null;
  /** The kernels in use: "webgpu (<adapter>)", or the js backend's description. */
  kernels: string | null;
  /** Why training runs on js rather than WebGPU. */
  fallback: string | null;
  sample: string;
  error: string | null;
}

const state: DemoState = { records: [], done: false, backend: null, kernels: null, fallback: null, sample: '', error: null };
(window as unknown as { reloraDemo: DemoState }).reloraDemo = state;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

/** WebGPU unless asked otherwise or impossible here; js with the reason otherwise. */
function chooseBackend(params: URLSearchParams): { backend: 'webgpu' | 'js'; reason: string | null } {
  if (params.get('backend') === 'js') return { backend: 'js', reason: 'the page was opened with ?backend=js' };
  if (!isSecureContext) {
    return { backend: 'js', reason: 'the page was served over plain http from an address other than localhost, and browsers offer WebGPU and SharedArrayBuffer only to https or localhost pages' };
  }
  if (!crossOriginIsolated) {
    return {
      backend: 'js',
      reason: 'the page is not cross-origin isolated (its server must send Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp), so there is no SharedArrayBuffer for the training worker to wait on the GPU with',
    };
  }
  if (!('gpu' in navigator)) return { backend: 'js', reason: 'this browser offers no WebGPU (navigator.gpu is missing)' };
  return { backend: 'webgpu', reason: null };
}

function drawCurve(records: DemoRecord[], total: number): void {
  const canvas = $<HTMLCanvasElement>('curve');
  const ctx = canvas.getContext('2d')!;
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (records.length === 0) return;
  const losses = records.map((r) => r.loss);
  const hi = Math.max(...losses), lo = Math.min(...losses);
  const x = (u: number): number => 30 + ((u - 1) / Math.max(1, total - 1)) * (w - 40);
  const y = (l: number): number => 10 + ((hi - l) / Math.max(1e-6, hi - lo)) * (h - 30);
  ctx.strokeStyle = '#bbb';
  for (let i = 1; i < records.length; i++) {
    if (records[i].merges > records[i - 1].merges) {
      ctx.beginPath(); ctx.moveTo(x(records[i].update), 0); ctx.lineTo(x(records[i].update), h); ctx.stroke();
    }
  }
  ctx.strokeStyle = '#1565c0';
  ctx.beginPath();
  records.forEach((r, i) => (i === 0 ? ctx.moveTo(x(r.update), y(r.loss)) : ctx.lineTo(x(r.update), y(r.loss))));
  ctx.stroke();
  ctx.fillStyle = '#333';
  ctx.fillText(hi.toFixed(2), 0, 14);
  ctx.fillText(lo.toFixed(2), 0, h - 18);
}

function show(r: DemoRecord, total: number): void {
  $('stats').textContent = `update ${r.update}/${total} · ${r.phase === 'full' ? 'full-rank warm start' : 'ReLoRA'} · loss ${r.loss.toFixed(3)} · lr ${r.lr.toExponential(2)} · merges ${r.merges} · rank of W − W_warm_start ${r.rank ?? '–'}`;
}

function fail(message: string): void {
  state.error = message;
  $('stats').textContent = `error: ${message}`;
}

/** The worker that owns the GPU device, while training may use it. */
let device: Worker | null = null;

function onMessage(m: FromTrainer): void {
  if (m.kind === 'backend') {
    if (m.backend === 'js') {
      device?.terminate();
      device = null;
    }
    state.backend = m.backend;
    state.kernels = m.kernels;
    state.fallback = m.fallback;
    $('backend').textContent = m.backend === 'webgpu'
      ? `Backend: WebGPU on ${m.kernels.replace(/^webgpu \((.*)\)$/, '$1')}. Every kernel runs as a WGSL compute shader in a worker that owns the device; the training loop runs in a second worker and waits for each result through shared memory.`
      : `Backend: js (TypeScript kernels on the CPU), not WebGPU: ${m.fallback}.`;
  } else if (m.kind === 'record') {
    state.records.push(m.record);
    show(m.record, m.total);
    drawCurve(state.records, m.total);
  } else if (m.kind === 'sample') {
    state.sample = m.text;
    $('output').textContent = m.text;
  } else if (m.kind === 'done') {
    state.done = true;
  } else {
    fail(m.message);
  }
}

/** A whole number from the query string, at least `min`; a bad one stops the page with a message naming it. */
function queryNumber(params: URLSearchParams, name: string, fallback: number, min: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`?${name}= must be a whole number of at least ${min}, got "${raw}"`);
  return n;
}

function main(): void {
  const params = new URLSearchParams(location.search);
  const choice = chooseBackend(params);
  const lengths = {
    warmStartSteps: queryNumber(params, 'warm', 30, 0),
    cycleLength: queryNumber(params, 'cycle', 20, 1),
    cycles: queryNumber(params, 'cycles', 3, 1),
    sample: queryNumber(params, 'sample', 120, 1),
  };
  const trainer = new Worker('trainer.js', { type: 'module' });
  trainer.onmessage = (e: MessageEvent<FromTrainer>) => onMessage(e.data);
  trainer.onerror = (e) => fail(`the training worker failed: ${e.message}`);
  let port: MessagePort | null = null;
  if (choice.backend === 'webgpu') {
    device = new Worker('device.js', { type: 'module' });
    device.onerror = (e) => fail(`the WebGPU device worker failed: ${e.message}`);
    const channel = new MessageChannel();
    device.postMessage({ port: channel.port1 }, [channel.port1]);
    port = channel.port2;
  }
  const start: ToTrainer = { kind: 'start', backend: choice.backend, reason: choice.reason, port, lengths };
  trainer.postMessage(start, port ? [port] : []);
  $<HTMLButtonElement>('sample').onclick = () => {
    trainer.postMessage({ kind: 'sample', prompt: $<HTMLInputElement>('prompt').value } satisfies ToTrainer);
  };
}

try {
  main();
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
