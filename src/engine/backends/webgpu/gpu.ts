/// <reference types="@webgpu/types" />
/**
 * Finding a WebGPU device: the browser's `navigator.gpu`, or in Node the Dawn bindings of the
 * npm package `webgpu` (an optional dependency, imported only when asked for, so a browser bundle
 * and a machine without it are unaffected). No adapter is an error that says why, never a
 * silent fallback: the caller decides what to fall back to.
 */

/** What `relora doctor` and the demo page show about the adapter. */
export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for a CPU implementation (SwiftShader, lavapipe): correct but slow. */
  fallback: boolean;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

export interface GpuHandle {
  device: GPUDevice;
  adapter: AdapterReport;
}

/** The SwiftShader Vulkan driver Debian's chromium package ships: a CPU adapter for CI. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

// Dawn's GPU object drives the delivery of its promises: once collected, mapAsync never
// resolves. Held for the life of the process.
let dawnGpu: GPU | null = null;

async function gpuEntryPoint(): Promise<GPU> {
  if (dawnGpu) return dawnGpu;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  // A variable specifier keeps bundlers from pulling Dawn into a browser build.
  const pkg = 'webgpu';
  let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
  try {
    mod = (await import(pkg)) as typeof mod;
  } catch (err) {
    throw new Error(`WebGPU: the optional npm package "webgpu" (Dawn for Node) could not be loaded: ${err instanceof Error ? err.message : String(err)}. Install it with "npm install webgpu".`);
  }
  // Dawn's constructors (GPUBufferUsage, GPUShaderStage, ...) are what WebGPU code expects as globals.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  dawnGpu = mod.create([]);
  return dawnGpu;
}

/**
 * Request an adapter and a device with the adapter's largest buffer limits. Throws with the
 * reason (and, in Node, the driver hint) when there is none.
 */
export async function requestGpu(): Promise<GpuHandle> {
  const gpu = await gpuEntryPoint();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    const hint = typeof process !== 'undefined' && process.versions?.node
      ? ` (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? 'unset'}; without a GPU, Debian's chromium package provides SwiftShader: VK_ICD_FILENAMES=${SWIFTSHADER_ICD})`
      : '';
    throw new Error(`WebGPU: no adapter found${hint}`);
  }
  const info = adapter.info;
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(limits.maxStorageBuffersPerShaderStage, 8),
    },
  });
  const description = info.description || '';
  const fallback = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe/i.test(`${description} ${info.architecture} ${info.device}`);
  return {
    device,
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description,
      fallback,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
    },
  };
}

/** One line naming the adapter, e.g. "google swiftshader (Vulkan SwiftShader Device), CPU fallback". */
export function describeAdapter(a: AdapterReport): string {
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || 'unknown adapter';
  return `${name}${a.description ? ` (${a.description})` : ''}${a.fallback ? ', CPU fallback' : ''}`;
}
