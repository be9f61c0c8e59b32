/**
 * `relora doctor`'s WebGPU line: which adapter `--backend webgpu` would run on, or why there is
 * none. Probing never selects the backend.
 */
import { describeAdapter, requestGpu, type AdapterReport } from './gpu.ts';

export interface WebGpuProbe {
  /** One line naming the adapter; null when there is none. */
  adapter: string | null;
  details: AdapterReport | null;
  /** Why there is no adapter. */
  error: string | null;
}

const PROBE_TIMEOUT_MS = 30_000;

export async function probeWebGpu(): Promise<WebGpuProbe> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the WebGPU implementation within ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS);
    });
    const gpu = await Promise.race([requestGpu(), timeout]);
    gpu.device.destroy();
    return { adapter: describeAdapter(gpu.adapter), details: gpu.adapter, error: null };
  } catch (err) {
    return { adapter: null, details: null, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}
