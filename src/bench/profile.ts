/**
 * Per-kernel time of a training step: wraps every method of a Kernels object with a timer (in
 * place, undone by `stop`). GEMM calls are split by shape so the big products can be told apart.
 * The step's wall time minus the kernels' total is what JavaScript (autodiff, allocation, GC)
 * costs.
 */
import type { Kernels } from '../engine/backends/kernels.ts';

export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
}

export interface KernelProfiler {
  /** Forget what was recorded so far (e.g. after warm-up). */
  reset(): void;
  /** Recorded times, largest first. */
  report(): KernelTime[];
  /** Put the original methods back. */
  stop(): void;
}

type AnyFn = (...args: unknown[]) => unknown;

/** Wraps the methods of `k` and of any further kernel objects (e.g. the native fused kernels). */
export function profileKernels(k: Kernels, ...more: object[]): KernelProfiler {
  const table = new Map<string, KernelTime>();
  const restore: (() => void)[] = [];
  for (const obj of [k, ...more]) wrapAll(obj as Record<string, unknown>, table, restore);
  return {
    reset: () => table.clear(),
    report: () => [...table.values()].sort((a, b) => b.ms - a.ms),
    stop: () => {
      for (const r of restore) r();
      restore.length = 0;
    },
  };
}

function wrapAll(target: Record<string, unknown>, table: Map<string, KernelTime>, restore: (() => void)[]): void {
  for (const [name, value] of Object.entries(target)) {
    if (typeof value !== 'function' || name === 'getThreads' || name === 'setThreads') continue;
    const fn = value as AnyFn;
    restore.push(() => { target[name] = fn; });
    target[name] = (...args: unknown[]): unknown => {
      const label = name === 'gemm' || name === 'gemmBf16' || name === 'gemmBf16ToBf16'
        ? `${name} ${args[0] ? 'T' : 'N'}${args[1] ? 'T' : 'N'} ${args[2]}×${args[3]}×${args[4]}${(args[16] as number) > 1 ? ` ×${args[16]}` : ''}`
        : name;
      const t0 = process.hrtime.bigint();
      try {
        return fn(...args);
      } finally {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const e = table.get(label) ?? { kernel: label, calls: 0, ms: 0 };
        e.calls++;
        e.ms += ms;
        table.set(label, e);
      }
    };
  }
}
