/**
 * Checkpoints: a folder per save, written under a temporary name, every file fsynced, then
 * renamed into place; the run's `latest` pointer is updated last. Each checkpoint has a manifest
 * (sizes, SHA-256) that loading verifies, and a state.json whose every field is validated, so a
 * torn, corrupted or hand-edited checkpoint is detected and `--resume` (like eval, export and
 * generate: see run-folder.ts) falls back to the newest valid one. A checkpoint that fails
 * verification is never deleted, only set aside.
 *
 *   RUN/checkpoints/step-000120/{model.safetensors, optimizer.safetensors, state.json, manifest.json}
 *   RUN/latest            → "step-000120"
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { atomicWriteFile } from '../io/atomic.ts';
import { describeIssues, ManifestFilesSchema, manifestEntry, manifestMismatch } from './manifest.ts';
import { parseSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { testHook } from './test-hooks.ts';
import type { SamplerState } from '../data/sampler.ts';
import type { RandomState } from '../engine/rng.ts';
import { toHostAll, type Tensor } from '../engine/tensor.ts';
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
  /** The compute backend that wrote it: resuming elsewhere continues correctly, but not bit-identically. */
  /** `ranks`: the processes of a data-parallel job (absent: one). */
  engine?: { backend: string; threads: number; ranks?: number };
}

const count = z.number().int().nonnegative();
const randomState = z.object({ seed: count, calls: count });

/**
 * What state.json must hold. The manifest proves the bytes are the ones written; this proves
 * they mean something (a hand-edited or foreign file is refused by field, never half-used).
 */
const TrainStateSchema = z.object({
  version: z.literal(CHECKPOINT_VERSION),
  step: count,
  phase: z.enum(['full', 'lora', 'relora']),
  phase_step: count,
  optimizer_steps: count,
  counters: z.object({ merges: count, resets: count }),
  tokens: count,
  elapsed: z.number().nonnegative(),
  skipped: count,
  sampler: z.object({ epoch: count, position: count }),
  rng: z.record(z.string(), randomState),
  engine: z.object({ backend: z.string(), threads: z.number().int().positive(), ranks: z.number().int().positive().optional() }).optional(),
});

/** The files every checkpoint holds (besides its manifest), in manifest order. */
export const CHECKPOINT_FILES = ['model.safetensors', 'optimizer.safetensors', 'state.json'] as const;
export type CheckpointFile = (typeof CHECKPOINT_FILES)[number];

const CheckpointManifestSchema = z.object({ version: z.number(), step: count, files: ManifestFilesSchema });
type Manifest = z.infer<typeof CheckpointManifestSchema>;

/** The folder of a run that holds its checkpoints. */
export const CHECKPOINTS_DIR = 'checkpoints';
/** The file of a run naming its newest committed checkpoint. */
export const LATEST_POINTER = 'latest';

export const checkpointName = (step: number): string => `step-${String(step).padStart(6, '0')}`;
const stepOf = (name: string): number => Number(name.slice('step-'.length));

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

function tensorsToWrite(tensors: Record<string, Tensor>): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  toHostAll(Object.values(tensors)); // from a GPU: every tensor in one readback
  for (const [name, t] of Object.entries(tensors)) {
    const d = t.data;
    for (let i = 0; i < t.size; i++) {
      if (!Number.isFinite(d[i])) throw new Error(`tensor "${name}" holds a non-finite value (${d[i]}) at index ${i}`);
    }
    out[name] = { dtype: 'F32', shape: [...t.shape], data: d };
  }
  return out;
}

export interface CheckpointContent {
  model: Record<string, Tensor>;
  optimizer: Record<string, Tensor>;
  state: TrainState;
}

/** Whether an errno code means "no room left" (a full disk, or the user's quota). */
export const isDiskFull = (code: string | undefined): boolean => code === 'ENOSPC' || code === 'EDQUOT';

/**
 * Write a checkpoint atomically and point `latest` at it; then keep only the newest `keep`.
 * A failure at any point (a full disk included) leaves the previous checkpoint and `latest`
 * as they were, removes the partial write and throws an error that says so.
 */
export async function saveCheckpoint(runDir: string, content: CheckpointContent, keep: number): Promise<string> {
  const dir = join(runDir, CHECKPOINTS_DIR);
  mkdirSync(dir, { recursive: true });
  const name = checkpointName(content.state.step);
  const tmp = join(dir, `.tmp-${name}-${process.pid}`);
  const final = join(dir, name);
  const previous = readLatestPointer(runDir);
  const keptNote = previous ? `the previous checkpoint ${join(dir, previous)} is still valid` : 'no earlier checkpoint exists';
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp);
    await writeSafetensors(join(tmp, 'model.safetensors'), tensorsToWrite(content.model));
    testHook(`checkpoint:${content.state.step}`);
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), tensorsToWrite(content.optimizer));
    await atomicWriteFile(join(tmp, 'state.json'), `${JSON.stringify(content.state, null, 1)}\n`);
    const files = CHECKPOINT_FILES.map((file) => manifestEntry(tmp, file));
    const manifest: Manifest = { version: CHECKPOINT_VERSION, step: content.state.step, files };
    await atomicWriteFile(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
    fsyncPath(tmp);
    // A checkpoint of the same step from an earlier attempt (a resumed run redoes updates) is
    // moved aside rather than deleted first, so no moment exists where neither copy is whole.
    const aside = join(dir, `.old-${name}-${process.pid}`);
    if (existsSync(final)) renameSync(final, aside);
    renameSync(tmp, final);
    fsyncPath(dir);
    rmSync(aside, { recursive: true, force: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const err = e as NodeJS.ErrnoException;
    if (isDiskFull(err.code)) {
      throw new Error(`checkpoint ${name} not written: the disk is full (${err.code}); ${keptNote}. Free some space and continue with --resume ${runDir}`, { cause: e });
    }
    throw new Error(`checkpoint ${name} not written: ${err.message}; ${keptNote}`, { cause: e });
  }
  try {
    await atomicWriteFile(join(runDir, LATEST_POINTER), `${name}\n`);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(`checkpoint ${name} was written, but ${join(runDir, LATEST_POINTER)} could not be updated (${err.code ?? err.message}); ${keptNote}`, { cause: e });
  }
  pruneCheckpoints(runDir, keep, name);
  return final;
}

/**
 * The checkpoint name in RUN/latest, or null when there is none or it names none (a torn
 * write, a hand edit, a folder in its place). `problem` hears of a pointer that is not a file,
 * which would also stop the next checkpoint from being committed.
 */
export function readLatestPointer(runDir: string, problem?: (msg: string) => void): string | null {
  const p = join(runDir, LATEST_POINTER);
  if (!existsSync(p)) return null;
  if (!statSync(p).isFile()) {
    problem?.(`${p} is not a file (it should hold the name of the newest checkpoint): ignoring it; remove it before training on in this folder`);
    return null;
  }
  const name = readFileSync(p, 'utf8').trim();
  return /^step-\d+$/.test(name) ? name : null;
}

/** Checkpoint folder names, newest first. */
export function listCheckpoints(runDir: string): string[] {
  const dir = join(runDir, CHECKPOINTS_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => /^step-\d+$/.test(n)).sort((a, b) => stepOf(b) - stepOf(a));
}

function pruneCheckpoints(runDir: string, keep: number, latest: string): void {
  const all = listCheckpoints(runDir);
  let kept = 0;
  for (const n of all) {
    if (n === latest || kept < keep) {
      kept++;
      continue;
    }
    rmSync(join(runDir, CHECKPOINTS_DIR, n), { recursive: true, force: true });
  }
  cleanInterruptedWrites(runDir);
}

/**
 * Tidy up after writes that a crash interrupted (from other processes: this one's own are in
 * use). A temporary folder is an incomplete checkpoint and goes. A folder moved aside is a
 * complete older copy of a checkpoint that was being replaced: it is put back if the
 * replacement never arrived, else removed.
 */
export function cleanInterruptedWrites(runDir: string): void {
  const dir = join(runDir, CHECKPOINTS_DIR);
  if (!existsSync(dir)) return;
  for (const n of readdirSync(dir)) {
    const m = /^\.(tmp|old)-(step-\d+)-(\d+)$/.exec(n);
    if (!m || Number(m[3]) === process.pid) continue;
    const p = join(dir, n);
    if (m[1] === 'old' && !existsSync(join(dir, m[2]))) renameSync(p, join(dir, m[2]));
    else rmSync(p, { recursive: true, force: true });
  }
}

/**
 * Remove the checkpoints after `step`: a resumed run redoes those updates, and a checkpoint
 * from the abandoned stretch must not be taken for its newest state later. One that fails
 * verification is never deleted (its damage may be the user's to inspect or repair): it is
 * renamed to `step-N.rejected-<time>`, which no listing takes for a checkpoint, and reported
 * through `log`. Returns the names removed.
 */
export function discardCheckpointsAfter(runDir: string, step: number, log?: (msg: string) => void): string[] {
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`discardCheckpointsAfter: step must be a non-negative integer, got ${step}`);
  const removed: string[] = [];
  for (const n of listCheckpoints(runDir)) {
    if (stepOf(n) <= step) continue;
    const dir = join(runDir, CHECKPOINTS_DIR, n);
    let problem: string | null = null;
    try {
      verifyCheckpoint(dir);
    } catch (e) {
      problem = (e as Error).message;
    }
    if (problem === null) {
      rmSync(dir, { recursive: true, force: true });
      removed.push(n);
      continue;
    }
    const aside = `${dir}.rejected-${Date.now()}`;
    renameSync(dir, aside);
    log?.(`set aside ${n} as ${aside} (it failed verification: ${problem}); it is no longer used, delete it once you no longer need it`);
  }
  return removed;
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainState;
  model: Record<string, Float32Array>;
  optimizer: Record<string, Float32Array>;
  /** Newer checkpoints that failed verification and were passed over (loadLatestCheckpoint). */
  skipped?: string[];
}

function readManifest(dir: string): Manifest {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) throw new Error(`checkpoint ${dir}: manifest.json is missing (incomplete checkpoint)`);
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch {
    throw new Error(`checkpoint file ${manifestPath} is not valid JSON (truncated or corrupted)`);
  }
  const parsed = CheckpointManifestSchema.safeParse(manifest);
  if (!parsed.success) throw new Error(`checkpoint file ${manifestPath} does not have the expected fields (corrupted): ${describeIssues(parsed.error)}`);
  const entries = parsed.data.files;
  for (const file of CHECKPOINT_FILES) {
    if (!entries.some((f) => f.file === file)) throw new Error(`checkpoint file ${manifestPath} does not list ${file} (corrupted)`);
  }
  const stray = entries.find((f) => !(CHECKPOINT_FILES as readonly string[]).includes(f.file));
  if (stray) throw new Error(`checkpoint file ${manifestPath} lists an unexpected file "${stray.file}" (corrupted)`);
  return parsed.data;
}

/** Parse and validate state.json: every field named when missing or out of range. */
function readState(dir: string, manifestStep: number): TrainState {
  const statePath = join(dir, 'state.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(statePath, 'utf8'));
  } catch {
    throw new Error(`checkpoint file ${statePath} is not valid JSON`);
  }
  const version = (raw as { version?: unknown } | null)?.version;
  if (version !== CHECKPOINT_VERSION) throw new Error(`checkpoint ${dir}: version ${JSON.stringify(version)}, this relora reads version ${CHECKPOINT_VERSION}`);
  const parsed = TrainStateSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`checkpoint file ${statePath} is not a valid training state: ${describeIssues(parsed.error)}`);
  }
  const state = parsed.data as TrainState;
  const name = basename(dir);
  if (/^step-\d+$/.test(name) && stepOf(name) !== state.step) {
    throw new Error(`checkpoint file ${statePath} says "step" ${state.step}, but its folder is ${name}`);
  }
  if (manifestStep !== state.step) {
    throw new Error(`checkpoint file ${statePath} says "step" ${state.step}, but ${join(dir, 'manifest.json')} says ${manifestStep}`);
  }
  return state;
}

/**
 * Verify one checkpoint folder without loading its tensors: the manifest, the listed `files`
 * (default all) against it, and state.json's contents. Throws naming the file at fault.
 */
export function verifyCheckpoint(dir: string, files: readonly CheckpointFile[] = CHECKPOINT_FILES): TrainState {
  const manifest = readManifest(dir);
  for (const f of manifest.files) {
    if (!files.includes(f.file as CheckpointFile) && f.file !== 'state.json') continue;
    const p = join(dir, f.file);
    const bad = manifestMismatch(dir, f);
    if (bad?.kind === 'missing') throw new Error(`checkpoint file ${p} is missing`);
    if (bad?.kind === 'size') throw new Error(`checkpoint file ${p} has ${bad.bytes} bytes, its manifest says ${f.bytes} (truncated or corrupted)`);
    if (bad?.kind === 'checksum') throw new Error(`checkpoint file ${p} does not match its checksum (corrupted)`);
  }
  return readState(dir, manifest.step);
}

/** Read and verify one checkpoint folder; throws naming the file that is missing or corrupt. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const state = verifyCheckpoint(dir);
  const read = (file: string): Record<string, Float32Array> => {
    const st = parseSafetensors(readFileSync(join(dir, file)), join(dir, file));
    return Object.fromEntries(st.names().map((n) => [n, st.readFloat32(n)]));
  };
  return { dir, state, model: read('model.safetensors'), optimizer: read('optimizer.safetensors') };
}

/**
 * The newest valid checkpoint of a run, opened by `open` (which throws when a checkpoint fails
 * verification): the one `latest` names, else (or when it fails) the next older one. Each one
 * passed over is reported through `warn` and listed in `skipped`. This is the one fallback rule
 * for --resume, eval, export and generate.
 */
export function openLatestCheckpoint<T>(runDir: string, open: (dir: string) => T, warn: (msg: string) => void): { value: T; dir: string; skipped: string[] } {
  const names = listCheckpoints(runDir);
  const pointed = readLatestPointer(runDir, warn);
  // `latest` is the commit point: a newer folder is one whose pointer update never happened.
  const order = pointed && names.includes(pointed) ? names.filter((n) => stepOf(n) <= stepOf(pointed)) : names;
  if (order.length === 0) throw new Error(`${runDir}: run folder has no checkpoints yet (looked in ${join(runDir, CHECKPOINTS_DIR)})`);
  const skipped: string[] = [];
  for (const n of order) {
    const dir = join(runDir, CHECKPOINTS_DIR, n);
    try {
      return { value: open(dir), dir, skipped };
    } catch (e) {
      skipped.push(n);
      const older = order.indexOf(n) < order.length - 1;
      warn(`${(e as Error).message}; ${older ? 'falling back to an older checkpoint' : 'no older checkpoint left'}`);
    }
  }
  throw new Error(`${runDir}: no valid checkpoint (all of ${order.join(', ')} failed verification)`);
}

/** {@link openLatestCheckpoint} loading the tensors (what --resume needs). */
export function loadLatestCheckpoint(runDir: string, warn: (msg: string) => void): LoadedCheckpoint {
  const { value, skipped } = openLatestCheckpoint(runDir, loadCheckpoint, warn);
  return { ...value, skipped };
}
