/**
 * The native backend: a thin wrapper over the N-API addon built from native/ by
 * scripts/build-native.mjs. Every kernel is the addon's own function (no per-call JS work
 * beyond the call itself); the addon validates sizes and throws Errors like the js backend.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Kernels } from './kernels.ts';

/**
 * Fused kernels outside the Kernels interface (native/src/fused.c). The ops use them when the
 * native backend is active and compose the same result from Kernels methods otherwise, so the
 * js backend stays the readable reference.
 */
export interface FusedKernels {
  /** out[i] = x[i] · mask[i], mask as Kernels.dropoutMask(key, threshold, scale) without the buffer. */
  dropoutApply(x: Float32Array, out: Float32Array, n: number, key: number, threshold: number, scale: number): void;
  /** dx[i] += g[i] · mask[i], the same mask. */
  dropoutBackwardAdd(g: Float32Array, dx: Float32Array, n: number, key: number, threshold: number, scale: number): void;
  /** Kernels.crossEntropyBackward that writes dLogits (ignored rows zeroed) instead of adding to it. */
  crossEntropyBackwardWrite: Kernels['crossEntropyBackward'];
  /** Whether gemmBf16 works here (oneDNN build on a CPU it can run bf16 matmuls on). */
  readonly bf16: boolean;
  /** dst = bf16(src[0..n)) rounded to nearest even, packed two per float: dst needs ceil(n/2) floats. */
  toBf16(src: Float32Array, dst: Float32Array, n: number): void;
  /** C = alpha·op(A)·op(B) + beta·C with A, B packed bf16 (as toBf16 writes), C fp32; fp32 accumulation. */
  gemmBf16(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
  ): void;
}

/** What the compiled addon exports (see native/src/addon.c). */
interface NativeAddon extends Omit<Kernels, 'name'>, Omit<FusedKernels, 'bf16'> {
  bf16Available(): boolean;
  readonly name: 'native';
  /** Whether LAPACK was found at build time. */
  readonly lapack: boolean;
  /** Singular values (descending) through LAPACK dgesdd, loaded lazily at run time. */
  svdValues(a: Float32Array | Float64Array, m: number, n: number): Float64Array;
  /** Whether a LAPACK library with dgesdd could be opened. */
  lapackAvailable(): boolean;
  benchGemmDirect(transA: boolean, transB: boolean, M: number, N: number, K: number, reps: number): number;
  /** `gemm` forced onto the built-in kernel (the fallback when oneDNN is absent). */
  gemmBuiltin: Kernels['gemm'];
}

const ADDON_RELATIVE_PATH = join('native', 'build', 'Release', 'relora_native.node');

let addon: NativeAddon | null = null;
let kernels: Kernels | null = null;
let fused: FusedKernels | null = null;
let loadError: string | null = null;
let attempted = false;

/** The package root: the nearest ancestor of this file whose package.json is named "relora"
 * (works both from src/ under tsx and from the compiled dist/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'relora') return dir;
      } catch {
        // An unreadable package.json is not ours; keep walking up.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json named "relora" above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/**
 * libgomp reads its wait policy once, when the addon loads it. By default an idle OpenMP thread
 * spins for about 300,000 iterations before sleeping; on a 2-core machine with any other busy
 * process, the spinning thread takes the core its partner needs, and steps ran 1.4–3× slower
 * (llama_9m: 312 ms vs 222 ms per step with one competing process). A spin of 1,000 iterations
 * cost nothing measurable on a quiet machine (111 vs 115 ms) and sleeps soon under contention.
 * An explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT from the user wins.
 */
function setOpenMpWaitPolicy(): void {
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.GOMP_SPINCOUNT = '1000';
}

function loadAddon(): NativeAddon | null {
  if (attempted) return addon;
  attempted = true;
  try {
    const root = packageRoot();
    const file = join(root, ADDON_RELATIVE_PATH);
    if (!existsSync(file)) {
      loadError = `${file} does not exist (build it with "node scripts/build-native.mjs"; needs a C compiler, and libdnnl-dev for oneDNN GEMM)`;
      return null;
    }
    setOpenMpWaitPolicy();
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (err) {
    loadError = `loading the native addon failed: ${err instanceof Error ? err.message : String(err)}`;
    addon = null;
  }
  return addon;
}

/** The native kernels, or null when the addon is missing or fails to load (see nativeLoadError). */
export function loadNativeKernels(): Kernels | null {
  if (kernels) return kernels;
  const a = loadAddon();
  if (!a) return null;
  kernels = {
    name: 'native',
    blas: a.blas,
    getThreads: a.getThreads,
    setThreads: a.setThreads,
    gemm: a.gemm,
    add: a.add,
    mul: a.mul,
    scale: a.scale,
    axpy: a.axpy,
    addScalar: a.addScalar,
    sum: a.sum,
    sumSquares: a.sumSquares,
    fill: a.fill,
    embeddingForward: a.embeddingForward,
    embeddingBackward: a.embeddingBackward,
    rmsnormForward: a.rmsnormForward,
    rmsnormBackward: a.rmsnormBackward,
    ropeForward: a.ropeForward,
    ropeBackward: a.ropeBackward,
    attentionForward: a.attentionForward,
    attentionBackward: a.attentionBackward,
    siluForward: a.siluForward,
    siluBackward: a.siluBackward,
    swigluForward: a.swigluForward,
    swigluBackward: a.swigluBackward,
    dropoutMask: a.dropoutMask,
    crossEntropyForward: a.crossEntropyForward,
    crossEntropyBackward: a.crossEntropyBackward,
    adamwStep: a.adamwStep,
  };
  // An addon built from older sources lacks them; the ops then compose Kernels methods.
  let bf16: boolean | null = null;
  fused = typeof a.dropoutApply === 'function' && typeof a.gemmBf16 === 'function' && typeof a.crossEntropyBackwardWrite === 'function'
    ? {
      dropoutApply: a.dropoutApply,
      dropoutBackwardAdd: a.dropoutBackwardAdd,
      crossEntropyBackwardWrite: a.crossEntropyBackwardWrite,
      // Probing builds a small oneDNN primitive: only when a bf16 product is first asked for.
      get bf16(): boolean {
        bf16 ??= a.bf16Available();
        return bf16;
      },
      toBf16: a.toBf16,
      gemmBf16: a.gemmBf16,
    }
    : null;
  return kernels;
}

/** The fused kernels when `k` is the native backend (the object loadNativeKernels returned), else null. */
export function fusedKernels(k: Kernels): FusedKernels | null {
  return k === kernels ? fused : null;
}

/** Why loadNativeKernels() returned null; null when it has not failed. */
export function nativeLoadError(): string | null {
  loadAddon();
  return loadError;
}

/** Whether the addon was built with LAPACK available (false when the addon is absent). */
export function nativeHasLapack(): boolean {
  return loadAddon()?.lapack ?? false;
}

/** The addon's built-in GEMM (same contract as Kernels.gemm) even in a oneDNN build, so tests
 * cover the fallback everywhere; null when the addon is absent. */
export function nativeBuiltinGemm(): Kernels['gemm'] | null {
  return loadAddon()?.gemmBuiltin ?? null;
}

/**
 * GFLOP/s of the GEMM library called directly from C on C-allocated M×K and K×N buffers
 * (one warm-up, then `reps` timed calls): the yardstick for the overhead of `gemm` from JS.
 */
export function benchGemmDirect(transA: boolean, transB: boolean, M: number, N: number, K: number, reps: number): number {
  const a = loadAddon();
  if (!a) throw new Error(`benchGemmDirect: native backend unavailable: ${loadError ?? 'unknown reason'}`);
  return a.benchGemmDirect(transA, transB, M, N, K, reps);
}

/** LAPACK's singular values (dgesdd through the addon), or null when the addon or LAPACK is missing. */
export function nativeSingularValues(): ((a: Float32Array | Float64Array, m: number, n: number) => Float64Array) | null {
  const a = loadAddon();
  if (!a || !a.lapackAvailable()) return null;
  return (x, m, n) => a.svdValues(x, m, n);
}
