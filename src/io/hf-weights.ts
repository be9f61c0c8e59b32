/**
 * The weight files of a Hugging Face model folder: one `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` ({"weight_map": {tensor name: shard file}}). Every file's header
 * is validated when it is opened; tensors are read later, one at a time, straight into their
 * destination, so a large model is never held twice.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonObjectFile } from './json-file.ts';
import { SafetensorsFile } from './safetensors.ts';

export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
/** An index names each tensor once (≈ 100 bytes each): a few MB even for the largest models. */
const MAX_INDEX_BYTES = 64 * 2 ** 20;

export interface HFWeights {
  /** The files opened, as paths (for messages). */
  readonly files: string[];
  /** Every tensor name, in file order (single file) or index order (shards). */
  names(): string[];
  /** The open file that holds `name`, or undefined. */
  fileOf(name: string): SafetensorsFile | undefined;
  close(): Promise<void>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A shard name must be a plain file in the folder: an index must not point anywhere else. */
function checkShardName(index: string, tensor: string, file: unknown): string {
  if (typeof file !== 'string' || file === '' || file === '.' || file === '..' || /[/\\]/.test(file) || file.includes('\0')) {
    throw new Error(`${index}: weight_map[${JSON.stringify(tensor)}] is ${JSON.stringify(file)}; expected the name of a .safetensors file in the same folder`);
  }
  if (!file.endsWith('.safetensors')) {
    throw new Error(`${index}: weight_map[${JSON.stringify(tensor)}] names ${JSON.stringify(file)}, which is not a .safetensors file (only safetensors weights are supported)`);
  }
  return file;
}

/** Parses an index file into tensor name → shard file name. */
export function parseWeightsIndex(raw: unknown, index: string): Map<string, string> {
  if (!isRecord(raw)) throw new Error(`${index}: expected a JSON object with a "weight_map"`);
  const map = raw.weight_map;
  if (!isRecord(map)) throw new Error(`${index}: field "weight_map" is ${JSON.stringify(map) ?? 'missing'}; expected an object {tensor name: shard file}`);
  const out = new Map<string, string>();
  for (const [tensor, file] of Object.entries(map)) out.set(tensor, checkShardName(index, tensor, file));
  if (out.size === 0) throw new Error(`${index}: "weight_map" is empty`);
  return out;
}

async function openFile(path: string): Promise<SafetensorsFile> {
  try {
    return await SafetensorsFile.open(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code) throw new Error(`${path}: cannot open (${err.code}: ${err.message})`, { cause: e });
    throw e;
  }
}

/** Why a folder has no safetensors weights, as helpfully as the folder allows. */
function missingWeightsError(dir: string): Error {
  const entries = readdirSync(dir);
  const other = entries.filter((f) => /\.(bin|pt|pth|ckpt|h5|msgpack|gguf)$/.test(f));
  if (other.length) {
    return new Error(`${dir}: has no ${SINGLE_WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}, only ${other.slice(0, 3).join(', ')}; only safetensors weights are supported (re-save with save_pretrained(..., safe_serialization=True))`);
  }
  return new Error(`${dir}: has no weights: expected ${SINGLE_WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} (sharded)`);
}

/** Opens the weights of a model folder (index preferred when both are present, as transformers does). */
export async function openHFWeights(dir: string): Promise<HFWeights> {
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  const singlePath = join(dir, SINGLE_WEIGHTS_FILE);
  if (existsSync(indexPath)) return openSharded(dir, indexPath);
  if (existsSync(singlePath)) {
    if (!statSync(singlePath).isFile()) throw new Error(`${singlePath}: is not a file`);
    const file = await openFile(singlePath);
    return {
      files: [singlePath],
      names: () => file.names(),
      fileOf: (name) => (file.has(name) ? file : undefined),
      close: () => file.close(),
    };
  }
  throw missingWeightsError(dir);
}

async function openSharded(dir: string, indexPath: string): Promise<HFWeights> {
  const map = parseWeightsIndex(readJsonObjectFile(indexPath, MAX_INDEX_BYTES), indexPath);
  const shardNames = [...new Set(map.values())];
  for (const s of shardNames) {
    const p = join(dir, s);
    if (!existsSync(p)) throw new Error(`${indexPath}: lists shard ${s}, but ${p} is missing`);
  }
  const opened = new Map<string, SafetensorsFile>();
  const closeAll = async (): Promise<void> => {
    for (const f of opened.values()) await f.close();
  };
  try {
    for (const s of shardNames) opened.set(s, await openFile(join(dir, s)));
    for (const [tensor, s] of map) {
      if (!opened.get(s)!.has(tensor)) {
        throw new Error(`${indexPath}: says tensor ${JSON.stringify(tensor)} is in ${s}, but ${join(dir, s)} has no such tensor`);
      }
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  return {
    files: shardNames.map((s) => join(dir, s)),
    names: () => [...map.keys()],
    fileOf: (name) => {
      const s = map.get(name);
      return s === undefined ? undefined : opened.get(s);
    },
    close: closeAll,
  };
}
