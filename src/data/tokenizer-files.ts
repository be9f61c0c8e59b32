/**
 * tokenizer.json in and out. A file that our ByteLevelBpe can run exactly (our own trained files,
 * GPT-2-style files) runs on it, since it encodes about ten times faster than the general
 * implementation; a LLaMA-2-style (SentencePiece) BPE file runs on SentencePieceBpe when its
 * vocabulary allows exact word splitting; every other Hugging Face tokenizer runs on
 * @huggingface/tokenizers.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ByteLevelBpe, byteLevelBpeFromJSON, byteLevelBpeIncompatibility } from './bpe.ts';
import { findEosId, HfTokenizer } from './hf-tokenizer.ts';
import { SentencePieceBpe, sentencePieceBpeIncompatibility } from './sentencepiece-bpe.ts';
import type { Tokenizer } from './tokenizer.ts';

export type TokenizerImplementation = 'auto' | 'huggingface';

type Json = Record<string, unknown>;

/** Every token string -> id of a tokenizer.json the byte-level path accepts (vocab + added tokens). */
function byteLevelVocab(json: Json): Map<string, number> {
  const vocab = new Map(Object.entries((json.model as Json).vocab as Record<string, number>));
  for (const t of (json.added_tokens ?? []) as Json[]) vocab.set(t.content as string, t.id as number);
  return vocab;
}

/**
 * A Tokenizer from a parsed tokenizer.json (and optionally its tokenizer_config.json, which can
 * name the EOS token). `describe` names the source in error messages.
 */
export function tokenizerFromJSON(
  json: unknown,
  config: Json = {},
  options: { describe?: string; implementation?: TokenizerImplementation } = {},
): Tokenizer {
  const describe = options.describe ?? 'tokenizer.json';
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${describe}: expected a JSON object`);
  if (options.implementation !== 'huggingface' && byteLevelBpeIncompatibility(json) === null) {
    return byteLevelBpeFromJSON(json, findEosId(byteLevelVocab(json as Json), config, describe));
  }
  const general = new HfTokenizer(json, config, describe);
  if (options.implementation !== 'huggingface' && sentencePieceBpeIncompatibility(json) === null) return new SentencePieceBpe(json as Json, general);
  return general;
}

/** What a worker thread needs to rebuild a tokenizer: which implementation, its JSON, its EOS. */
export interface TokenizerSpec {
  kind: 'byte-level-bpe' | 'sentencepiece-bpe' | 'huggingface';
  json: object;
  eosId: number;
}

/** The spec of one of our tokenizer implementations, or null for any other Tokenizer. */
export function tokenizerSpec(tokenizer: Tokenizer): TokenizerSpec | null {
  if (tokenizer instanceof ByteLevelBpe) return { kind: 'byte-level-bpe', json: tokenizer.toJSON(), eosId: tokenizer.eosId };
  if (tokenizer instanceof SentencePieceBpe) return { kind: 'sentencepiece-bpe', json: tokenizer.toJSON(), eosId: tokenizer.eosId };
  if (tokenizer instanceof HfTokenizer) return { kind: 'huggingface', json: tokenizer.toJSON(), eosId: tokenizer.eosId };
  return null;
}

/** The tokenizer a spec describes (the same ids as the one it was taken from). */
export function tokenizerFromSpec(spec: TokenizerSpec): Tokenizer {
  if (spec.kind === 'byte-level-bpe') return byteLevelBpeFromJSON(spec.json, spec.eosId);
  const general = new HfTokenizer(spec.json, {}, 'tokenizer.json', spec.eosId);
  return spec.kind === 'sentencepiece-bpe' ? new SentencePieceBpe(spec.json as Json, general) : general;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`${path}: cannot read tokenizer file (${(err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Loads a tokenizer from a tokenizer.json file, or from a folder holding one; a
 * tokenizer_config.json beside it is read too when present.
 */
export async function loadTokenizer(path: string, implementation: TokenizerImplementation = 'auto'): Promise<Tokenizer> {
  if (!existsSync(path)) throw new Error(`tokenizer ${path}: no such file or folder`);
  const file = statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!existsSync(file)) throw new Error(`tokenizer ${path}: folder has no tokenizer.json`);
  const json = await readJson(file);
  const configPath = join(dirname(file), 'tokenizer_config.json');
  const config = existsSync(configPath) ? await readJson(configPath) : {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${configPath}: expected a JSON object`);
  return tokenizerFromJSON(json, config as Json, { describe: file, implementation });
}

/** Writes tokenizer.json atomically (temporary file, then rename). */
export async function saveTokenizer(tokenizer: Tokenizer, path: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify(tokenizer.toJSON(), null, 2) + '\n');
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new Error(`${path}: cannot write tokenizer (${(err as Error).message})`);
  }
}
