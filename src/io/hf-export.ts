/**
 * Export of a model as a Hugging Face LLaMA folder that transformers loads with
 * AutoModelForCausalLM / AutoTokenizer:
 *
 *   config.json  model.safetensors  tokenizer.json  tokenizer_config.json  generation_config.json
 *
 * The folder is written under a temporary name and renamed into place, each file fsynced first,
 * so OUT_DIR is either absent, the previous export, or complete.
 */
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Tokenizer } from '../data/tokenizer.ts';
import { kvHeadsOf } from '../nn/config.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { atomicWriteFile } from './atomic.ts';
import { writeHFConfig, type HFDtype, type LlamaArchitecture } from './hf-config.ts';
import { writeSafetensors, type TensorToWrite, type WritableDtype } from './safetensors.ts';

export interface ExportOptions {
  /** Weight dtype in the file; default float32. */
  dtype?: HFDtype;
  tokenizer?: Tokenizer | null;
  /** A tokenizer_config.json to write as is (e.g. the one an imported model came with). */
  tokenizerConfig?: Record<string, unknown> | null;
  /** Replace OUT_DIR when it exists and is not empty. */
  overwrite?: boolean;
}

const SAFETENSORS_DTYPE: Record<HFDtype, WritableDtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

/** The text of token `id` in a tokenizer.json (added tokens first, then the model's vocabulary). */
export function tokenText(tokenizerJson: object, id: number): string | null {
  const j = tokenizerJson as { added_tokens?: { id: number; content: string }[]; model?: { vocab?: unknown } };
  for (const t of j.added_tokens ?? []) if (t.id === id) return t.content;
  const vocab = j.model?.vocab;
  if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [text, v] of Object.entries(vocab as Record<string, number>)) if (v === id) return text;
  }
  return null;
}

/**
 * tokenizer_config.json for a tokenizer.json that adds no special tokens by itself: the fast
 * tokenizer class runs tokenizer.json exactly, with EOS named (our tokenizers have no BOS; it is
 * the EOS, GPT-2 style).
 */
export function defaultTokenizerConfig(tokenizer: Tokenizer, modelMaxLength: number): Record<string, unknown> {
  const eos = tokenText(tokenizer.toJSON(), tokenizer.eosId);
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: modelMaxLength,
    bos_token: eos,
    eos_token: eos,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
  };
}

/** The weights of a plain (LoRA-merged) model under Hugging Face names, non-finite values refused. */
function weightsToWrite(model: LlamaForCausalLM, dtype: WritableDtype): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, t] of model.namedParameters()) {
    if (/\.lora_[AB]\./.test(name)) {
      throw new Error(`export: parameter ${name} is a LoRA factor; merge the LoRA layers into their weights before export`);
    }
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) throw new Error(`export: parameter ${name} holds a non-finite value (${d[i]}) at index ${i}`);
    }
    out[name] = { dtype, shape: [...t.shape], data: d };
  }
  return out;
}

function isEmptyDir(p: string): boolean {
  return statSync(p).isDirectory() && readdirSync(p).length === 0;
}

/** Writes `model` (no LoRA layers) and its tokenizer as a Hugging Face folder. Returns the files written. */
export async function exportHFModel(model: LlamaForCausalLM, outDir: string, opts: ExportOptions = {}): Promise<string[]> {
  const dtype = opts.dtype ?? 'float32';
  if (!(dtype in SAFETENSORS_DTYPE)) throw new Error(`export: unknown dtype "${dtype}"; expected float32, float16 or bfloat16`);
  const target = resolve(outDir);
  if (existsSync(target) && !opts.overwrite && !isEmptyDir(target)) {
    throw new Error(`export: ${target} already exists and is not empty; choose another folder or allow overwriting`);
  }
  const tensors = weightsToWrite(model, SAFETENSORS_DTYPE[dtype]);
  const c = model.config;
  const eos = opts.tokenizer ? opts.tokenizer.eosId : null;
  const arch: LlamaArchitecture = {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numAttentionHeads: c.numHeads,
    numKeyValueHeads: kvHeadsOf(c),
    numHiddenLayers: c.numLayers,
    maxPositionEmbeddings: c.maxSeqLen,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    tieWordEmbeddings: c.tieWordEmbeddings ?? false,
    bosTokenId: eos,
    eosTokenId: eos,
    padTokenId: null,
    dtype,
  };

  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  const files = ['config.json', 'model.safetensors', 'generation_config.json'];
  try {
    await writeHFConfig(tmp, arch);
    await writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
    const generation: Record<string, unknown> = { _from_model_config: true, bos_token_id: eos, eos_token_id: eos };
    await atomicWriteFile(join(tmp, 'generation_config.json'), json(generation));
    if (opts.tokenizer) {
      await atomicWriteFile(join(tmp, 'tokenizer.json'), JSON.stringify(opts.tokenizer.toJSON()));
      const tc = opts.tokenizerConfig ?? defaultTokenizerConfig(opts.tokenizer, c.maxSeqLen);
      await atomicWriteFile(join(tmp, 'tokenizer_config.json'), json(tc));
      files.push('tokenizer.json', 'tokenizer_config.json');
    }
    if (existsSync(target)) {
      // An empty folder (or, with overwrite, an old export) makes way only once the new one is complete.
      const old = join(dirname(target), `.${basename(target)}.old-${process.pid}`);
      renameSync(target, old);
      renameSync(tmp, target);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, target);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return files.map((f) => join(target, f));
}
