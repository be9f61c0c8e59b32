/**
 * Which kernels the engine runs on. `RELORA_BACKEND=native|js|webgpu|auto` (default auto: native
 * when the addon loads, else js with a warning; a GPU is used only when asked for by name).
 * `RELORA_THREADS` sets the thread count.
 */
import { jsKernels } from './backends/js.ts';
import type { Kernels } from './backends/kernels.ts';
import { loadNativeKernels, nativeLoadError, nativeSingularValues } from './backends/native.ts';
import { setSingularValuesImpl } from './linalg.ts';
import { loadWebGpuKernels } from './backends/webgpu/bridge.ts';
import { setDeviceMirror } from './tensor.ts';

export type BackendName = 'js' | 'native' | 'webgpu' | 'auto';

let active: Kernels | null = null;
let fallbackReason: string | null = null;

/** The active kernels (selected lazily from the environment on first use). */
export function K(): Kernels {
  if (!active) setBackend(parseBackendName(process.env.RELORA_BACKEND ?? 'auto', 'RELORA_BACKEND'));
  return active!;
}

export function parseBackendName(value: string, source: string): BackendName {
  if (value === 'js' || value === 'native' || value === 'webgpu' || value === 'auto') return value;
  throw new Error(`${source}: unknown backend "${value}"; expected one of native, js, webgpu, auto`);
}

/** Select the backend. `native` fails with the reason if the addon is unavailable, `webgpu` if no adapter is found. */
export function setBackend(name: BackendName, threads?: number): Kernels {
  let chosen: Kernels;
  let reason: string | null = null;
  if (name === 'js') chosen = jsKernels;
  else if (name === 'webgpu') chosen = loadWebGpuKernels();
  else {
    const native = loadNativeKernels();
    if (native) chosen = native;
    else if (name === 'native') {
      throw new Error(`backend "native" is not available: ${nativeLoadError() ?? 'unknown reason'}. Use --backend js, or reinstall with libdnnl-dev present.`);
    } else {
      chosen = jsKernels;
      reason = nativeLoadError() ?? 'native addon not built';
    }
  }
  const envThreads = process.env.RELORA_THREADS;
  const t = threads ?? (envThreads !== undefined ? Number(envThreads) : undefined);
  if (t !== undefined) {
    if (!Number.isInteger(t) || t < 1) throw new Error(`threads must be a positive integer, got ${envThreads ?? t}`);
    chosen.setThreads(t);
  }
  active = chosen;
  fallbackReason = reason;
  setDeviceMirror(chosen.deviceMirror ?? null);
  // The rank diagnostic's SVD: LAPACK on the native backend when it can be opened, else TypeScript.
  setSingularValuesImpl(chosen.name === 'native' ? nativeSingularValues() : null);
  return chosen;
}

export interface BackendInfo {
  backend: 'js' | 'native' | 'webgpu';
  blas: string;
  threads: number;
  /** Why native is not in use when auto fell back to js. */
  fallback: string | null;
}

export function backendInfo(): BackendInfo {
  const k = K();
  return { backend: k.name, blas: k.blas, threads: k.getThreads(), fallback: fallbackReason };
}
