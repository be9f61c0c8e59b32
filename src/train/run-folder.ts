/**
 * The run folder, in one place: what its files are called, which checkpoint a path means, the
 * integrity of the files that define the run, reading its config and model shape, and the lock
 * that keeps it to one process. (Which held-out sequences are evaluated: evaluate.ts.)
 *
 *   RUN/config.json              the resolved training config (what --resume continues)
 *   RUN/tokenizer.json           the run's tokenizer; tokenizer_config.json beside it for an imported one
 *   RUN/model.json               the exact model shape
 *   RUN/rank_base.safetensors    W at the warm start, the reference of the rank measurements
 *   RUN/hf_source/               an imported model's Hugging Face metadata, for its export (--init-from)
 *   RUN/run-manifest.json        sizes and SHA-256 of the files above, recorded when written
 *   RUN/metrics.jsonl            one record per update, evaluation, restart, rank measurement
 *   RUN/checkpoints/step-N/      one checkpoint (its own manifest; see checkpoint.ts)
 *   RUN/latest                   the name of the newest committed checkpoint
 *   RUN/summary.json, report.html
 *   RUN/run.lock                 held by the one process writing the folder (see run-lock.ts)
 *
 * A path given to --resume, eval, export or generate resolves the same way: a checkpoint folder
 * is used as it is and must verify; a run folder means its newest checkpoint that verifies, any
 * newer one that does not being passed over with a warning naming it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { atomicWriteFile } from '../io/atomic.ts';
import { HF_METADATA_FILES, HF_SOURCE_DIR } from '../io/hf-metadata.ts';
import { configFromJSON, type LlamaConfig } from '../nn/config.ts';
import { CHECKPOINTS_DIR, LATEST_POINTER, openLatestCheckpoint, verifyCheckpoint, type CheckpointFile } from './checkpoint.ts';
import { DEFAULT_MODEL, modelConfigFor, resolveConfig, type TrainConfig } from './config.ts';
import { describeIssues, ManifestFilesSchema, manifestEntry, manifestMismatch } from './manifest.ts';
import { RUN_LOCK_FILE } from './run-lock.ts';

export { lockRunFolder, RunLockedError } from './run-lock.ts';

/** The names of a run folder's files. */
export const RUN_FILES = {
  config: 'config.json',
  tokenizer: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  model: 'model.json',
  rankBase: 'rank_base.safetensors',
  hfSource: HF_SOURCE_DIR,
  manifest: 'run-manifest.json',
  metrics: 'metrics.jsonl',
  checkpoints: CHECKPOINTS_DIR,
  latest: LATEST_POINTER,
  summary: 'summary.json',
  report: 'report.html',
  lock: RUN_LOCK_FILE,
} as const;

/** A name in {@link RUN_FILES}. */
export type RunFileKey = keyof typeof RUN_FILES;

/** The path of one of a run folder's files. */
export const runFile = (runDir: string, key: RunFileKey): string => join(runDir, RUN_FILES[key]);

// ---- config and model shape ----

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** Read and validate the config a run folder was started with (RUN/config.json). */
export function readRunConfig(runDir: string): TrainConfig {
  const p = runFile(runDir, 'config');
  if (!existsSync(p)) throw new Error(`${runDir}: no config.json (not a relora run folder)`);
  const raw = readJson(p);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${p}: expected a JSON object`);
  // The saved config is a resolved one: drop what resolving derives (and the token budget that
  // became `steps`) and validate the rest like any config.
  const { grad_accum: _derived, tokens: _budget, ...keys } = raw as Record<string, unknown>;
  // Runs started with init_from by earlier versions saved the default model block beside it; the
  // imported model, not that block, is their shape.
  if (keys.init_from !== undefined && JSON.stringify(keys.model) === JSON.stringify(DEFAULT_MODEL)) delete keys.model;
  // A full-rank run has no warm start, but resolving filled in the default of its schedule, which
  // a config may not name in mode full.
  if (keys.mode === 'full') delete keys.warm_start_schedule;
  // Runs saved before warm_start_schedule existed ran their warm start on its own cosine: a
  // resume goes on with that schedule, not today's default.
  else if (!('warm_start_schedule' in keys)) keys.warm_start_schedule = 'phase';
  return resolveConfig(keys, p);
}

/**
 * The exact model shape of a run: RUN/model.json, or for a run folder older than that file,
 * the shape derived from RUN/config.json (`tokenizerVocab` is then the vocabulary size unless
 * the config names one).
 */
export function readRunModelConfig(runDir: string, tokenizerVocab?: number): LlamaConfig {
  const exact = runFile(runDir, 'model');
  if (existsSync(exact)) return configFromJSON(readJson(exact), exact);
  try {
    const cfg = readRunConfig(runDir);
    if (cfg.vocab_size === undefined && tokenizerVocab === undefined) throw new Error('it names no vocab_size and no tokenizer was given');
    return modelConfigFor(cfg, tokenizerVocab ?? 0);
  } catch (e) {
    throw new Error(`${runFile(runDir, 'config')}: cannot derive the model shape, and ${exact} is missing (${(e as Error).message})`, { cause: e });
  }
}

// ---- integrity of the files that define the run ----

/**
 * The files whose change would turn a resumed run into a different one (or change how its
 * export is prompted), relative to the run folder.
 */
export const SEALED_RUN_FILES: readonly string[] = [
  ...(['config', 'tokenizer', 'tokenizerConfig', 'model', 'rankBase'] as const).map((key) => RUN_FILES[key]),
  ...HF_METADATA_FILES.map((name) => `${HF_SOURCE_DIR}/${name}`),
];

const RunManifestSchema = z.object({ version: z.literal(1), files: ManifestFilesSchema });
type RunManifest = z.infer<typeof RunManifestSchema>;

function readRunManifest(runDir: string): RunManifest | null {
  const p = runFile(runDir, 'manifest');
  if (!existsSync(p)) return null;
  const parsed = RunManifestSchema.safeParse(readJson(p));
  if (!parsed.success) throw new Error(`${p}: not a run manifest (${describeIssues(parsed.error)}); it was edited or corrupted`);
  // Only the run's own defining files: a manifest cannot send the check elsewhere.
  const stray = parsed.data.files.find((f) => !SEALED_RUN_FILES.includes(f.file));
  if (stray) throw new Error(`${p}: lists ${JSON.stringify(stray.file)}, which is not one of the files that define a run; it was edited or corrupted`);
  return parsed.data;
}

/**
 * Record the size and SHA-256 of the run's defining files that exist and are not recorded yet
 * (RUN/run-manifest.json). Call it after writing any of them (config, tokenizer, model shape
 * at set-up; the rank base when the low-rank phase starts). A file once recorded is never
 * re-recorded: its later change is what {@link verifyRunFiles} reports.
 */
export async function sealRunFiles(runDir: string): Promise<void> {
  const manifest: RunManifest = readRunManifest(runDir) ?? { version: 1, files: [] };
  const recorded = new Set(manifest.files.map((f) => f.file));
  let added = false;
  for (const file of SEALED_RUN_FILES) {
    if (recorded.has(file) || !existsSync(join(runDir, file))) continue;
    manifest.files.push(manifestEntry(runDir, file));
    added = true;
  }
  if (added) await atomicWriteFile(runFile(runDir, 'manifest'), `${JSON.stringify(manifest, null, 1)}\n`);
}

/**
 * Throws, naming the file, when one of the run's defining files was changed or deleted since it
 * was recorded by {@link sealRunFiles}. A run folder from before run manifests has none to check.
 */
export function verifyRunFiles(runDir: string): void {
  const manifest = readRunManifest(runDir);
  if (!manifest) return;
  const manifestPath = runFile(runDir, 'manifest');
  const advice = `a run must be resumed, evaluated and exported with the files it was trained with: restore the original, or start a new run (${manifestPath} records them)`;
  for (const f of manifest.files) {
    const p = join(runDir, f.file);
    const bad = manifestMismatch(runDir, f);
    if (bad?.kind === 'missing') throw new Error(`run file ${p} is missing; ${advice}`);
    if (bad) throw new Error(`run file ${p} has changed since the run wrote it (${bad.kind === 'size' ? `${bad.bytes} bytes, recorded ${f.bytes}` : 'its SHA-256 differs'}); ${advice}`);
  }
}

// ---- which folder and which checkpoint a path means ----

/** A Hugging Face folder has a config.json with a model_type; a run's config.json has none. */
export function isHuggingFaceFolder(dir: string): boolean {
  const p = join(dir, 'config.json');
  if (!existsSync(p) || existsSync(join(dir, CHECKPOINTS_DIR))) return false;
  const raw = readJson(p);
  return typeof raw === 'object' && raw !== null && 'model_type' in raw;
}

/** A checkpoint folder holds a manifest.json; its run folder is two levels up (RUN/checkpoints/step-N). */
const isCheckpointFolder = (dir: string): boolean => existsSync(join(dir, 'manifest.json'));

export interface OpenedCheckpoint<T> {
  /** What `open` returned for the checkpoint chosen. */
  value: T;
  runDir: string;
  checkpointDir: string;
  /** Newer checkpoints of the run that failed verification and were passed over. */
  skipped: string[];
}

/**
 * Resolve a checkpoint folder, or a run folder (its newest valid checkpoint), check the run's
 * defining files, and open the checkpoint with `open` (which throws when it fails
 * verification). `command` names what the user ran, for the message about a Hugging Face folder.
 */
export function openCheckpoint<T>(path: string, open: (checkpointDir: string) => T, warn: (msg: string) => void, command = 'this command'): OpenedCheckpoint<T> {
  const p = resolve(path);
  if (!existsSync(p)) throw new Error(`${p}: no such checkpoint or run folder`);
  if (!statSync(p).isDirectory()) throw new Error(`${p}: is a file; expected a run folder or a checkpoint folder (RUN/checkpoints/step-N)`);
  if (isCheckpointFolder(p)) {
    const runDir = dirname(dirname(p));
    if (!existsSync(runFile(runDir, 'config'))) {
      throw new Error(`${p}: is a checkpoint, but ${runDir} (two levels up) has no config.json; a checkpoint is read inside its run folder (RUN/checkpoints/step-N)`);
    }
    verifyRunFiles(runDir);
    return { value: open(p), runDir, checkpointDir: p, skipped: [] };
  }
  if (isHuggingFaceFolder(p)) {
    throw new Error(`${p}: is a Hugging Face model folder, not a relora run; ${command} takes a run folder (RUN) or one of its checkpoints (RUN/checkpoints/step-N). To train on from this model, use relora train --init-from ${p}`);
  }
  if (!existsSync(runFile(p, 'config'))) {
    throw new Error(`${p}: not a relora run folder, checkpoint folder or Hugging Face model folder (no config.json or manifest.json)`);
  }
  verifyRunFiles(p);
  const { value, dir, skipped } = openLatestCheckpoint(p, open, warn);
  if (skipped.length) warn(`using ${dir}: ${skipped.join(', ')} failed verification (see above)`);
  return { value, runDir: p, checkpointDir: dir, skipped };
}

/**
 * {@link openCheckpoint} verifying only what reading the weights needs (model.safetensors and
 * state.json), for export and generate; returns the folders. Without `warn`, checkpoints passed
 * over are not reported (for a caller that loaded, and so warned, already).
 */
export function resolveCheckpoint(path: string, warn: (msg: string) => void = () => {}, command?: string): OpenedCheckpoint<null> {
  const needed: readonly CheckpointFile[] = ['model.safetensors', 'state.json'];
  return openCheckpoint(path, (dir) => {
    verifyCheckpoint(dir, needed);
    return null;
  }, warn, command);
}
