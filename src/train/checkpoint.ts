/**
 * Checkpoints: a folder per save, written under a temporary name, every file fsynced, then
 * renamed into place; the run's `latest` pointer is updated last. Each checkpoint has a manifest
 * (sizes, SHA-256) that loading verifies, so a torn or corrupted checkpoint is detected and
 * `--resume` falls back to the newest valid one.
 *
 *   RUN/checkpoints/step-000120/{model.safetensors, optimizer.safetensors, state.json, manifest.json}
 *   RUN/latest            → "step-000120"
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFile } from '../io/atomic.ts';
import { parseSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import type { SamplerState } from '../data/sampler.ts';
import type { RandomState } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import type { RestartCounters } from '../relora/restarts.ts';

export const CHECKPOINT_VERSION = 1;

/** Everything besides tensors that resuming needs. */
export interface TrainState {
  version: number;
  /** Updates completed in the whole run. */
  step: number;
  phase: 'full' | 'lora' | 'relora';
  /** Updates completed in the current phase (its schedule position). */
  phase_step: number;
  optimizer_steps: number;
  counters: RestartCounters;
  tokens: number;
  elapsed: number;
  skipped: number;
  sampler: SamplerState;
  rng: Record<string, RandomState>;
}

interface ManifestEntry {
  file: string;
  bytes: number;
  sha256: string;
}

interface Manifest {
  version: number;
  step: number;
  files: ManifestEntry[];
}

export const checkpointName = (step: number): string => `step-${String(step).padStart(6, '0')}`;

function fsyncPath(path: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems cannot fsync directories; the rename is still atomic there.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function tensorsToWrite(tensors: Record<string, Tensor>): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, t] of Object.entries(tensors)) {
    for (let i = 0; i < t.size; i++) {
      if (!Number.isFinite(t.data[i])) throw new Error(`checkpoint: tensor "${name}" holds a non-finite value at index ${i}; refusing to save it`);
    }
    out[name] = { dtype: 'F32', shape: [...t.shape], data: t.data };
  }
  return out;
}

export interface CheckpointContent {
  model: Record<string, Tensor>;
  optimizer: Record<string, Tensor>;
  state: TrainState;
}

/** Write a checkpoint atomically and point `latest` at it; then keep only the newest `keep`. */
export async function saveCheckpoint(runDir: string, content: CheckpointContent, keep: number): Promise<string> {
  const dir = join(runDir, 'checkpoints');
  mkdirSync(dir, { recursive: true });
  const name = checkpointName(content.state.step);
  const tmp = join(dir, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    await writeSafetensors(join(tmp, 'model.safetensors'), tensorsToWrite(content.model));
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), tensorsToWrite(content.optimizer));
    await atomicWriteFile(join(tmp, 'state.json'), `${JSON.stringify(content.state, null, 1)}\n`);
    const files = ['model.safetensors', 'optimizer.safetensors', 'state.json'].map((file) => {
      const p = join(tmp, file);
      return { file, bytes: statSync(p).size, sha256: sha256File(p) };
    });
    const manifest: Manifest = { version: CHECKPOINT_VERSION, step: content.state.step, files };
    await atomicWriteFile(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
    fsyncPath(tmp);
    const final = join(dir, name);
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    fsyncPath(dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOSPC') throw new Error(`checkpoint ${name}: the disk is full; the previous checkpoint is still valid (${join(runDir, 'latest')})`);
    throw e;
  }
  await atomicWriteFile(join(runDir, 'latest'), `${name}\n`);
  pruneCheckpoints(runDir, keep, name);
  return join(dir, name);
}

/** Checkpoint folder names, newest first. */
export function listCheckpoints(runDir: string): string[] {
  const dir = join(runDir, 'checkpoints');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => /^step-\d+$/.test(n)).sort().reverse();
}

function pruneCheckpoints(runDir: string, keep: number, latest: string): void {
  const all = listCheckpoints(runDir);
  let kept = 0;
  for (const n of all) {
    if (n === latest || kept < keep) {
      kept++;
      continue;
    }
    rmSync(join(runDir, 'checkpoints', n), { recursive: true, force: true });
  }
  // Leftovers of writes that were interrupted.
  for (const n of readdirSync(join(runDir, 'checkpoints'))) {
    if (n.startsWith('.tmp-') && !n.endsWith(`-${process.pid}`)) rmSync(join(runDir, 'checkpoints', n), { recursive: true, force: true });
  }
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainState;
  model: Record<string, Float32Array>;
  optimizer: Record<string, Float32Array>;
}

/** Read and verify one checkpoint folder; throws naming the file that is missing or corrupt. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) throw new Error(`checkpoint ${dir}: manifest.json is missing (incomplete checkpoint)`);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch {
    throw new Error(`checkpoint ${manifestPath}: not valid JSON`);
  }
  for (const f of manifest.files ?? []) {
    const p = join(dir, f.file);
    if (!existsSync(p)) throw new Error(`checkpoint file ${p} is missing`);
    const bytes = statSync(p).size;
    if (bytes !== f.bytes) throw new Error(`checkpoint file ${p} has ${bytes} bytes, its manifest says ${f.bytes} (truncated or corrupted)`);
    if (sha256File(p) !== f.sha256) throw new Error(`checkpoint file ${p} does not match its checksum (corrupted)`);
  }
  const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as TrainState;
  if (state.version !== CHECKPOINT_VERSION) throw new Error(`checkpoint ${dir}: version ${state.version}, this relora reads version ${CHECKPOINT_VERSION}`);
  const read = (file: string): Record<string, Float32Array> => {
    const st = parseSafetensors(readFileSync(join(dir, file)), join(dir, file));
    return Object.fromEntries(st.names().map((n) => [n, st.readFloat32(n)]));
  };
  return { dir, state, model: read('model.safetensors'), optimizer: read('optimizer.safetensors') };
}

/**
 * The newest valid checkpoint of a run: `latest` first, then older ones. Problems with newer
 * ones are reported through `warn` (the caller says that it fell back).
 */
export function loadLatestCheckpoint(runDir: string, warn: (msg: string) => void): LoadedCheckpoint {
  const names = listCheckpoints(runDir);
  const latestFile = join(runDir, 'latest');
  const pointed = existsSync(latestFile) ? readFileSync(latestFile, 'utf8').trim() : null;
  const order = pointed && names.includes(pointed) ? [pointed, ...names.filter((n) => n !== pointed)] : names;
  if (order.length === 0) throw new Error(`${runDir}: no checkpoints to resume from (looked in ${join(runDir, 'checkpoints')})`);
  for (const n of order) {
    try {
      return loadCheckpoint(join(runDir, 'checkpoints', n));
    } catch (e) {
      warn(`${(e as Error).message}; trying an older checkpoint`);
    }
  }
  throw new Error(`${runDir}: no valid checkpoint (all of ${order.join(', ')} failed verification)`);
}
