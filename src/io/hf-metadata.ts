/**
 * The Hugging Face metadata of a model folder (config.json, generation_config.json,
 * tokenizer_config.json, special_tokens_map.json, …), kept with a run that continues the model
 * (`--init-from`) so that its export carries the source's metadata over unchanged: BOS and EOS
 * ids, max_position_embeddings, the tokenizer class and whether it adds BOS. Regenerating
 * these from the run would make transformers prompt the exported model differently from the
 * original.
 *
 * A run keeps them in RUN/hf_source/, byte for byte, tokenizer.json included: the run's own
 * RUN/tokenizer.json is what relora tokenises with, which need not keep everything the source's
 * says (e.g. its post-processor, which makes transformers put BOS before every text).
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile } from './atomic.ts';
import { readHFConfig, type LlamaHFConfig } from './hf-config.ts';
import { parseJsonObject } from './json-file.ts';

/** Folder of a run that holds the metadata of the Hugging Face model it was initialised from. */
export const HF_SOURCE_DIR = 'hf_source';

/** The metadata files a Hugging Face model folder may have (everything but the weights). */
export const HF_METADATA_FILES = [
  'config.json',
  'tokenizer.json',
  'generation_config.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.json',
  'chat_template.jinja',
] as const;

/**
 * Metadata files are small (the largest, tokenizer.json, is ≈ 9 MB for Llama 3 and ≈ 34 MB for
 * Gemma); a larger one is not metadata and is refused rather than copied.
 */
const MAX_METADATA_BYTES = 128 * 2 ** 20;

type Json = Record<string, unknown>;

/** The metadata of a Hugging Face folder, as found. */
export interface HfMetadata {
  /** The folder it was read from (for messages). */
  dir: string;
  /** config.json as written, every field (not only the ones relora uses). */
  config: Json;
  /** config.json validated, with transformers' defaults filled in. */
  hfConfig: LlamaHFConfig;
  generationConfig: Json | null;
  tokenizerConfig: Json | null;
  /** tokenizer.json as written (post-processor and added tokens included); null when absent. */
  tokenizerJson: Json | null;
  /** Every metadata file present, by name, as its exact bytes (for copying verbatim). */
  files: Map<string, Uint8Array>;
}

/** The folder where a run keeps the metadata of its source model. */
export function hfSourceDir(runDir: string): string {
  return join(runDir, HF_SOURCE_DIR);
}

async function readSmallFile(path: string): Promise<Uint8Array | null> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error(`${path}: is not a file`);
    size = s.size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  if (size > MAX_METADATA_BYTES) {
    throw new Error(`${path}: is ${size} bytes; a Hugging Face metadata file is expected to be under ${MAX_METADATA_BYTES / 2 ** 20} MiB`);
  }
  return new Uint8Array(await readFile(path));
}


/**
 * Reads the metadata of a Hugging Face folder (or of a run's RUN/hf_source/). Returns null when
 * the folder has no config.json. JSON files are checked to be JSON objects, config.json to be a
 * valid LLaMA config, so a damaged file is named here rather than written into an export.
 */
export async function readHfMetadata(dir: string): Promise<HfMetadata | null> {
  const files = new Map<string, Uint8Array>();
  for (const name of HF_METADATA_FILES) {
    const bytes = await readSmallFile(join(dir, name));
    if (bytes) files.set(name, bytes);
  }
  const configBytes = files.get('config.json');
  if (!configBytes) return null;
  const configPath = join(dir, 'config.json');
  const hfConfig = await readHFConfig(configPath);
  const json = (name: string): Json | null => {
    const b = files.get(name);
    return b ? parseJsonObject(new TextDecoder().decode(b), join(dir, name)) : null;
  };
  for (const name of HF_METADATA_FILES) if (name.endsWith('.json') && name !== 'tokenizer.json') json(name);
  return {
    dir,
    config: parseJsonObject(new TextDecoder().decode(configBytes), configPath),
    hfConfig,
    generationConfig: json('generation_config.json'),
    tokenizerConfig: json('tokenizer_config.json'),
    tokenizerJson: json('tokenizer.json'),
    files,
  };
}

/**
 * Keeps the metadata of the Hugging Face folder `srcDir` with the run in `runDir`: each file in
 * HF_METADATA_FILES that the folder has is copied, byte for byte and atomically, to
 * RUN/hf_source/. tokenizer_config.json is also kept beside the run's tokenizer.json
 * (RUN/tokenizer_config.json), where the tokenizer loader looks for the name of the EOS token.
 * Throws, naming the file, when srcDir has no valid config.json or a metadata file is damaged.
 */
export async function copyHfMetadata(srcDir: string, runDir: string): Promise<void> {
  const meta = await readHfMetadata(srcDir);
  if (!meta) throw new Error(`${join(srcDir, 'config.json')} is missing; a Hugging Face model folder has config.json next to its weights`);
  const dest = hfSourceDir(runDir);
  await mkdir(dest, { recursive: true });
  for (const name of HF_METADATA_FILES) {
    const bytes = meta.files.get(name);
    // A file the source lacks must not survive from an earlier copy into the same run.
    if (bytes) await atomicWriteFile(join(dest, name), bytes);
    else await rm(join(dest, name), { force: true });
  }
  const tokenizerConfig = meta.files.get('tokenizer_config.json');
  if (tokenizerConfig) await atomicWriteFile(join(runDir, 'tokenizer_config.json'), tokenizerConfig);
}
