/**
 * Where `relora export` and `relora generate` get a model from: a run folder (its latest
 * checkpoint), one checkpoint folder, or a Hugging Face LLaMA folder. Checkpoints of the LoRA
 * and ReLoRA phases hold W, lora_A and lora_B separately; the model returned here has every
 * LoRA factor merged (W + (alpha/r)·B·A), so it is a plain LLaMA.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadTokenizer } from '../data/tokenizer-files.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { K } from '../engine/backend.ts';
import type { Tensor } from '../engine/tensor.ts';
import { loadHFModel } from '../io/hf-model.ts';
import { hfSourceDir, readHfMetadata } from '../io/hf-metadata.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { LlamaForCausalLM } from '../nn/llama.ts';
import { loraLayers } from '../relora/wrap.ts';
import { checkInferenceMemory } from './inference-memory.ts';
import { specialTokensFromHF } from './special-tokens.ts';
import { isHuggingFaceFolder, readRunConfig, readRunModelConfig, resolveCheckpoint, runFile } from '../train/run-folder.ts';

// Where a path points is decided by the run folder module; re-exported for export's metadata.
export { isHuggingFaceFolder, resolveCheckpoint };

export interface ModelSource {
  kind: 'huggingface' | 'checkpoint';
  /** The folder the weights came from (the checkpoint folder for a run). */
  dir: string;
  /** The run folder, for a checkpoint. */
  runDir?: string;
  model: LlamaForCausalLM;
  tokenizer: Tokenizer | null;
  /** tokenizer_config.json of a Hugging Face folder, to carry through an export. */
  tokenizerConfig: Record<string, unknown> | null;
  /** Ids end-of-sequence can take (config.json may list several). */
  eosIds: number[];
  /** Special tokens to put before a prompt (BOS for most Hugging Face LLaMA tokenizers). */
  promptPrefix: number[];
}

/** Where a run folder's warnings (a checkpoint passed over) go unless the caller says. */
const warnOnStderr = (msg: string): void => {
  process.stderr.write(`warning: ${msg}\n`);
};

/**
 * Loads a checkpoint's model with its LoRA factors merged. Tensors are read one at a time into
 * the model's buffers; LoRA factors are read, merged and dropped one layer at a time.
 */
export async function loadCheckpointModel(path: string, warn: (msg: string) => void = warnOnStderr): Promise<ModelSource> {
  const { checkpointDir, runDir } = resolveCheckpoint(path, warn);
  const tokPath = runFile(runDir, 'tokenizer');
  const tokenizer = existsSync(tokPath) ? await loadTokenizer(tokPath) : null;
  const cfg = readRunModelConfig(runDir, tokenizer?.vocabSize);
  const file = join(checkpointDir, 'model.safetensors');
  const st = await SafetensorsFile.open(file);
  const model = new LlamaForCausalLM(cfg);
  try {
    const params = new Map(model.namedParameters());
    const loraModules = new Set<string>();
    for (const name of st.names()) {
      const m = /^(.*)\.lora_[AB]\.weight$/.exec(name);
      if (m) loraModules.add(m[1]);
      else if (!params.has(name)) throw new Error(`${file}: holds tensor ${JSON.stringify(name)}, which the model of ${runDir} does not have`);
    }
    for (const [name, t] of params) {
      if (!st.has(name)) throw new Error(`${file}: tensor ${JSON.stringify(name)} is missing`);
      const info = st.info(name);
      if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) throw new Error(`${file}: tensor ${JSON.stringify(name)} has shape [${info.shape.join(', ')}], the model expects [${t.shape.join(', ')}]`);
      st.readFloat32(name, t.data);
    }
    if (loraModules.size > 0) {
      const runCfg = readRunConfig(runDir);
      if (!(typeof runCfg.alpha === 'number' && runCfg.alpha > 0)) throw new Error(`${runFile(runDir, 'config')}: "alpha" is ${JSON.stringify(runCfg.alpha)}; the LoRA scaling needs it`);
      for (const mod of loraModules) mergeFactors(st, file, mod, params.get(`${mod}.weight`), runCfg.alpha);
    }
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    await st.close();
  }
  // A run continued from a Hugging Face folder is prompted as that folder (and its export) is.
  const kept = await readHfMetadata(hfSourceDir(runDir)).catch((e: unknown) => {
    model.dispose();
    throw e;
  });
  const special = kept ? specialTokensFromHF(kept.hfConfig, kept.tokenizerConfig, tokenizer, kept.tokenizerJson ?? tokenizer?.toJSON() ?? null) : { eosIds: tokenizer ? [tokenizer.eosId] : [], promptPrefix: [] };
  return { kind: 'checkpoint', dir: checkpointDir, runDir, model, tokenizer, tokenizerConfig: kept?.tokenizerConfig ?? null, ...special };
}

/** W += (alpha / r)·B·A for one module, with the factors' shapes checked against W. */
function mergeFactors(st: SafetensorsFile, file: string, mod: string, weight: Tensor | undefined, alpha: number): void {
  if (!weight || weight.shape.length !== 2) throw new Error(`${file}: has LoRA factors for ${mod}, which is not a projection of this model`);
  const [out, inF] = weight.shape;
  const a = st.info(`${mod}.lora_A.weight`), b = st.info(`${mod}.lora_B.weight`);
  const r = a.shape[0];
  if (a.shape.length !== 2 || a.shape[1] !== inF || b.shape.length !== 2 || b.shape[0] !== out || b.shape[1] !== r) {
    throw new Error(`${file}: LoRA factors of ${mod} have shapes A [${a.shape.join(', ')}] and B [${b.shape.join(', ')}]; W is [${out}, ${inF}], so A must be [r, ${inF}] and B [${out}, r]`);
  }
  const A = st.readFloat32(a.name), B = st.readFloat32(b.name);
  K().gemm(false, false, out, inF, r, alpha / r, B, r, 0, A, inF, 0, 1, weight.data, inF, 0, 1);
}

/**
 * A plain copy of an in-memory model whose LoRA layers are merged (the model itself is left as
 * it is); the copy of a model without LoRA layers is just a copy.
 */
export function mergedCopy(model: LlamaForCausalLM): LlamaForCausalLM {
  const copy = new LlamaForCausalLM(model.config);
  const own = new Map(model.namedParameters());
  const merged = new Map<string, Float32Array>();
  for (const [path, layer] of loraLayers(model)) merged.set(`${path}.weight`, layer.mergedWeight());
  for (const [name, t] of copy.namedParameters()) {
    const src = merged.get(name) ?? own.get(name)?.data;
    if (!src) throw new Error(`mergedCopy: the model has no parameter ${name}`);
    t.data.set(src);
  }
  return copy;
}

/**
 * Loads any supported model folder for generation or export. A run folder means its newest
 * checkpoint that verifies (see src/train/run-folder.ts); a checkpoint passed over is reported
 * through `opts.warn` (default: stderr).
 */
export async function loadModelSource(path: string, opts: { maxSeqLen?: number; warn?: (msg: string) => void } = {}): Promise<ModelSource> {
  const p = resolve(path);
  if (!existsSync(p)) throw new Error(`${p}: no such file or folder`);
  if (!statSync(p).isDirectory()) throw new Error(`${p}: is a file; expected a run folder, a checkpoint folder or a Hugging Face model folder`);
  if (isHuggingFaceFolder(p)) {
    // The memory check runs on the shape config.json and the weight headers agree on, before allocation.
    const hf = await loadHFModel(p, { maxSeqLen: opts.maxSeqLen, beforeAllocate: (cfg) => checkInferenceMemory(cfg, { what: `the model in ${p}` }) });
    const special = specialTokensFromHF(hf.hfConfig, hf.tokenizerConfig, hf.tokenizer, hf.tokenizerJson);
    return { kind: 'huggingface', dir: p, model: hf.model, tokenizer: hf.tokenizer, tokenizerConfig: hf.tokenizerConfig, ...special };
  }
  return loadCheckpointModel(p, opts.warn);
}
