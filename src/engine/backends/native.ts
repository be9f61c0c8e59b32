/**
 * The native backend: a thin wrapper over the N-API addon built from native/ by
 * scripts/build-native.mjs. Every kernel is the addon's own function (no per-call JS work
 * beyond the call itself); the addon validates sizes and throws Errors like the js backend.
 * The one exception: gemmBf16 falls back to an emulation where oneDNN cannot run bf16 matmuls.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { emulatedAttentionBf16 } from './attention-bf16.ts';
import { emulatedGemmBf16, emulatedGemmBf16ToBf16 } from './bf16.ts';
import type { Kernels } from './kernels.ts';

/** What the compiled addon exports (see native/src/napi/addon.c). */
interface NativeAddon extends Omit<Kernels, 'name' | 'hasBf16Gemm'> {
  readonly name: 'native';
  /** Whether oneDNN can run bf16 matmuls on this CPU (probed once, on the first call). */
  bf16Available(): boolean;
  /** The bf16 instructions oneDNN detected on this CPU at run time. */
  bf16Isa(): 'amx' | 'avx512_bf16' | 'none';
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
 * How many iterations an idle OpenMP thread spins before it sleeps (GOMP_SPINCOUNT; libgomp's own
 * default is 300,000), a trade measured on this project's 2-core machines (BENCHMARKS.md, "OpenMP
 * wait policy"). Too short, the workers sleep between most kernels of a step: at 1,000, llama_60m
 * full-rank bf16 made ~1,900 more context switches per step than at 30,000 and its steps took
 * 6–17 % longer. Too long, a spinning worker takes the core its partner needs when another process
 * competes: llama_9m steps took +10–20 % at 30,000 against 1,000, but +55–65 % at 300,000.
 */
export const OPENMP_SPIN_COUNT = '30000';

/**
 * libgomp reads its wait policy once, when the addon loads it: set OPENMP_SPIN_COUNT first. An
 * explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT from the user wins.
 */
export function setOpenMpWaitPolicy(): void {
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.GOMP_SPINCOUNT = OPENMP_SPIN_COUNT;
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
  // Probing builds a small oneDNN primitive: only when a bf16 product is first asked for.
  let bf16: boolean | null = null;
  const hasBf16Gemm = (): boolean => (bf16 ??= a.bf16Available());
  const emulated = emulatedGemmBf16(a.gemm);
  const emulatedToBf16 = emulatedGemmBf16ToBf16(emulated);
  const emulatedAttention = emulatedAttentionBf16(a.gemm);
  const k: Kernels = {
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
    attentionForwardBf16: (...args) => (hasBf16Gemm() ? a.attentionForwardBf16 : emulatedAttention.attentionForwardBf16)(...args),
    attentionBackwardBf16: (...args) => (hasBf16Gemm() ? a.attentionBackwardBf16 : emulatedAttention.attentionBackwardBf16)(...args),
    siluForward: a.siluForward,
    siluBackward: a.siluBackward,
    swigluForward: a.swigluForward,
    swigluBackward: a.swigluBackward,
    dropoutMask: a.dropoutMask,
    dropoutApply: a.dropoutApply,
    dropoutApplyBf16: a.dropoutApplyBf16,
    dropoutBackwardAdd: a.dropoutBackwardAdd,
    crossEntropyForward: a.crossEntropyForward,
    crossEntropyBackward: a.crossEntropyBackward,
    crossEntropyBackwardWrite: a.crossEntropyBackwardWrite,
    crossEntropyFused: a.crossEntropyFused,
    toBf16: a.toBf16,
    toBf16Rows: a.toBf16Rows,
    gemmBf16: (...args) => (hasBf16Gemm() ? a.gemmBf16 : emulated)(...args),
    gemmBf16ToBf16: (...args) => (hasBf16Gemm() ? a.gemmBf16ToBf16 : emulatedToBf16)(...args),
    hasBf16Gemm,
    adamwStep: a.adamwStep,
  };
  // An addon built from older sources lacks some kernels: say so rather than fail mid-step.
  const missing = Object.entries(k).filter(([, v]) => v === undefined).map(([name]) => name);
  if (missing.length > 0) {
    loadError = `the native addon is out of date (no ${missing.join(', ')}); rebuild it with "node scripts/build-native.mjs"`;
    return null;
  }
  kernels = k;
  return kernels;
}

/** Why loadNativeKernels() returned null; null when it has not failed. */
export function nativeLoadError(): string | null {
  loadAddon();
  return loadError;
}

/** The addon's exports as they are (src/parallel/mpi.ts types its MPI entry points); null when it is absent. */
export function nativeAddonBindings(): object | null {
  return loadAddon();
}

/** The bf16 instructions oneDNN detects on this CPU (AMX, AVX512-BF16 or none); 'none' without the addon. */
export function nativeBf16Isa(): 'amx' | 'avx512_bf16' | 'none' {
  return loadAddon()?.bf16Isa?.() ?? 'none';
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

/**
 * Maps bytes [offset, offset + length) of a file read-only (the addon's mapFile); the ArrayBuffer
 * unmaps itself when collected. Null when the addon is absent or predates mapFile, so callers
 * fall back to reading the file. Throws (naming the file and the OS error) when mapping fails.
 */
export function mapFileReadOnly(): ((path: string, offset: number, length: number) => ArrayBuffer) | null {
  const a = loadAddon() as (NativeAddon & { mapFile?: (path: string, offset: number, length: number) => ArrayBuffer }) | null;
  const mapFile = a?.mapFile;
  return mapFile ? (path, offset, length) => mapFile(path, offset, length) : null;
}
