/**
 * The demo page (bundled by `relora demo`): trains a tiny LLaMA with ReLoRA on the built-in text,
 * in the tab, showing the loss curve, learning rate, merges and the rank of the accumulated
 * update live, and samples text on request. `window.reloraDemo` exposes the records (the
 * headless-browser test reads them).
 */
/// <reference lib="dom" />
import { setBackend } from '../../engine/backend.ts';
import { DEMO_TEXT } from '../text.ts';
import { DemoTrainer, type DemoRecord } from '../trainer.ts';

interface DemoState {
  records: DemoRecord[];
  done: boolean;
  backend: string;
  webgpu: string;
  error: string | null;
}

const state: DemoState = { records: [], done: false, backend: 'js', webgpu: 'probing…', error: null };
(window as unknown as { reloraDemo: DemoState }).reloraDemo = state;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

async function probeWebGpu(): Promise<string> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return 'not available in this browser';
  const adapter = await gpu.requestAdapter();
  if (!adapter) return 'no adapter';
  const i = adapter.info;
  return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'an adapter';
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

async function main(): Promise<void> {
  setBackend('js');
  state.webgpu = await probeWebGpu().catch((e: unknown) => `probe failed: ${String(e)}`);
  $('backend').textContent = `Backend: js (TypeScript kernels on the CPU). WebGPU: ${state.webgpu}. `
    + 'Training in the page runs on the js backend: the engine calls its kernels synchronously, and WebGPU reads results back only asynchronously, so the page falls back to js.';
  const params = new URLSearchParams(location.search);
  const trainer = new DemoTrainer({ text: DEMO_TEXT, warmStartSteps: Number(params.get('warm') ?? 30), cycleLength: Number(params.get('cycle') ?? 20), cycles: Number(params.get('cycles') ?? 3) });
  $<HTMLButtonElement>('sample').onclick = () => {
    $('output').textContent = trainer.sample($<HTMLInputElement>('prompt').value, 120);
  };
  const tick = (): void => {
    try {
      const r = trainer.step();
      state.records.push(r);
      show(r, trainer.totalSteps);
      drawCurve(state.records, trainer.totalSteps);
      if (trainer.done) {
        state.done = true;
        $('output').textContent = trainer.sample('the ', 120);
        return;
      }
      setTimeout(tick, 0);
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
      $('stats').textContent = `error: ${state.error}`;
    }
  };
  setTimeout(tick, 0);
}

void main();
