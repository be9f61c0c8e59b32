/**
 * The WebGPU measurements of BENCHMARKS.md in one run, for a machine with a GPU:
 * 1. fp32 GEMM TFLOP/s of the WGSL kernel on device-resident buffers at 4096³ and at the linear
 *    layers' shapes of llama_60m, llama_350m and llama_1b (tokens × width, all three products
 *    of a training step);
 * 2. tokens/s of full and ReLoRA training steps at llama_60m, llama_350m and llama_1b through
 *    `relora bench step --backend webgpu`, with the native CPU figure beside them.
 *
 *   node --import tsx scripts/bench-webgpu.ts [--skip-steps] [--models llama_60m,llama_350m] [--json out.json]
 *
 * `--quick` (a smoke run on a CPU adapter) shrinks the square GEMM to 256³, the token count to 128 and the steps to 16-token sequences.
 * `--tiny [--updates N]` only trains a tiny ReLoRA model in this process on native and on webgpu and
 * prints updates/s, kernel calls and synchronous readbacks per update (the figures BENCHMARKS.md
 * gives for SwiftShader, a CPU emulation of a GPU: they measure the backend's overhead, not a GPU).
 *
 * The step figures are `--backend webgpu` as training runs it (src/engine/backends/webgpu/bridge.ts):
 * tensors on the device, kernels recorded on the training thread and replayed by the worker that
 * owns the device, one synchronous readback per update. The GEMM figures are the kernel's own.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

import { NAMED_CONFIGS } from '../src/nn/config.ts';
import { describeAdapter } from '../src/engine/backends/webgpu/gpu.ts';
import { WebGpuKernels } from '../src/engine/backends/webgpu/kernels.ts';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const models = (opt('--models') ?? 'llama_60m,llama_350m,llama_1b').split(',');
const quick = argv.includes('--quick');
const TOKENS = quick ? 128 : 2048;
const SQUARE = quick ? 256 : 4096;

if (argv.includes('--tiny')) {
  await tinyTraining();
  process.exit(0);
}

/**
 * Updates/s of a tiny ReLoRA model (width 32, 2 layers, rank 4, LoRA dropout, 2 micro-batches of
 * 2×16 tokens) on `--backend webgpu` in this process, with the synchronous readbacks per update:
 * on a CPU adapter (SwiftShader) this measures the backend's own overhead, not GPU speed.
 */
async function tinyTraining(): Promise<void> {
  const { setBackend, K } = await import('../src/engine/backend.ts');
  const bridge = await import('../src/engine/backends/webgpu/bridge.ts');
  const { RandomStream } = await import('../src/engine/rng.ts');
  const { Tensor } = await import('../src/engine/tensor.ts');
  const { LlamaForCausalLM } = await import('../src/nn/llama.ts');
  const { AdamW } = await import('../src/optim/adamw.ts');
  const { DEFAULT_LORA, loraStreams, wrapWithLora } = await import('../src/relora/wrap.ts');
  const { trainStep } = await import('../src/train/step.ts');
  const cfg = { vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numLayers: 2, maxSeqLen: 32, rmsNormEps: 1e-6, ropeTheta: 10000 };
  const updates = Number(opt('--updates') ?? 20);
  const results: Record<string, unknown>[] = [];
  for (const backend of ['native', 'webgpu'] as const) {
    setBackend(backend);
    // Kernel calls, counted by wrapping the backend (the first bridge read back on every call).
    let calls = 0;
    const k = K() as unknown as Record<string, unknown>;
    for (const [name, f] of Object.entries(k)) {
      if (typeof f === 'function' && !['getThreads', 'setThreads', 'hasBf16Gemm'].includes(name)) {
        k[name] = (...args: unknown[]) => { calls++; return (f as (...a: unknown[]) => unknown)(...args); };
      }
    }
    const model = new LlamaForCausalLM(cfg).initWeights(5);
    wrapWithLora(model, { ...DEFAULT_LORA, rank: 4, alpha: 4, dropout: 0.1 }, loraStreams(5));
    const optimizer = new AdamW(model.namedTrainableParameters(), { lr: 1e-3 });
    const batch = (s: number): InstanceType<typeof Tensor>[] => [0, 1].map((j) => {
      const u = new Float32Array(32);
      new RandomStream(100 * s + j).uniform(u);
      return Tensor.from(Int32Array.from(u, (x) => Math.floor(x * cfg.vocabSize)), [2, 16]);
    });
    const step = (s: number): void => {
      const b = batch(s);
      trainStep(model, optimizer, b, 1e-3, 1);
      for (const t of b) t.dispose();
    };
    for (let s = 0; s < 3; s++) step(s);
    const c0 = (bridge as { webGpuCounters?: () => { readbacks: number } | null }).webGpuCounters?.() ?? null;
    const calls0 = calls;
    const t0 = performance.now();
    for (let s = 3; s < 3 + updates; s++) step(s);
    const sec = (performance.now() - t0) / 1000;
    const c1 = (bridge as { webGpuCounters?: () => { readbacks: number } | null }).webGpuCounters?.() ?? null;
    const rec = {
      backend, updatesPerSecond: updates / sec, tokensPerSecond: (64 * updates) / sec, kernelCallsPerUpdate: (calls - calls0) / updates,
      readbacksPerUpdate: backend === 'native' ? 0 : c0 && c1 ? (c1.readbacks - c0.readbacks) / updates : (calls - calls0) / updates,
    };
    results.push(rec);
    process.stdout.write(`tiny ${backend}: ${rec.updatesPerSecond.toFixed(2)} updates/s, ${rec.tokensPerSecond.toFixed(0)} tokens/s, ${rec.kernelCallsPerUpdate} kernel calls and ${rec.readbacksPerUpdate} synchronous readbacks per update\n`);
    optimizer.dispose();
    model.dispose();
  }
  const file = opt('--json');
  if (file) writeFileSync(file, `${JSON.stringify({ tiny: results }, null, 2)}\n`);
}

const k = await WebGpuKernels.open();
const adapter = describeAdapter(k.gpu.adapter);
process.stdout.write(`adapter: ${adapter}\n`);

/** Median seconds of `reps` GEMMs (each timed to its readback of one element, after a warm-up). */
async function timeGemm(M: number, N: number, K: number, transA: boolean, transB: boolean, reps: number): Promise<number> {
  const A = k.gpu.zeros(M * K), B = k.gpu.zeros(K * N), C = k.gpu.alloc(M * N);
  const one = async (n: number): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) k.gemm(transA, transB, M, N, K, 1, A, transA ? M : K, 0, B, transB ? K : N, 0, 0, C, N, 0, 1);
    await k.gpu.read(C, 1);
    return (performance.now() - t0) / 1000 / n;
  };
  await one(1);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push(await one(reps));
  for (const t of [A, B, C]) k.gpu.release(t);
  return times.sort((a, b) => a - b)[1];
}

const gemm: { shape: string; m: number; n: number; k: number; tflops: number }[] = [];
const shapes: [string, number, number, number, boolean, boolean][] = [[`${SQUARE}³`, SQUARE, SQUARE, SQUARE, false, false]];
for (const name of models) {
  const s = NAMED_CONFIGS[name];
  if (!s) throw new Error(`--models: unknown model ${name}`);
  const d = s.hiddenSize, f = s.intermediateSize;
  shapes.push([`${name} x·Wᵀ (up)`, TOKENS, f, d, false, true], [`${name} dY·W (down, dx)`, TOKENS, d, f, false, false], [`${name} dYᵀ·X (dW)`, f, d, TOKENS, true, false]);
}
for (const [shape, m, n, kk, tA, tB] of shapes) {
  const sec = await timeGemm(m, n, kk, tA, tB, quick ? 2 : 10);
  const tflops = (2 * m * n * kk) / sec / 1e12;
  gemm.push({ shape, m, n, k: kk, tflops });
  process.stdout.write(`gemm ${shape} ${m}×${kk}·${kk}×${n}: ${tflops.toPrecision(3)} TFLOP/s\n`);
}
k.gpu.destroy();

const steps: Record<string, unknown>[] = [];
if (!argv.includes('--skip-steps')) {
  for (const name of models) {
    for (const mode of ['full', 'relora']) {
      for (const backend of ['native', 'webgpu']) {
        const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', '--backend', backend, 'bench', 'step', '--model', name, '--mode', mode, '--steps', '3', '--warmup', '1', '--gemm-reps', '0', '--json', ...(quick ? ['--seq-len', '16', '--micro-batch', '1', '--vocab-size', '512'] : [])], { encoding: 'utf8' });
        const rec = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
        steps.push({ model: name, mode, backend, ...rec });
        process.stdout.write(`step ${name} ${mode} ${backend}: ${JSON.stringify(rec)}\n`);
      }
    }
  }
}
const file = opt('--json');
if (file) writeFileSync(file, `${JSON.stringify({ adapter, gemm, steps }, null, 2)}\n`);
process.exit(0);
