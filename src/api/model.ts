/**
 * The public model class: the LLaMA decoder of nn/llama.ts plus Hugging Face style loading
 * and saving (`fromPretrained` / `savePretrained`), which nn cannot offer itself because
 * reading and writing model folders lives in the layers above it (io, infer).
 */
import type { Tokenizer } from '../data/tokenizer.ts';
import type { HFDtype } from '../io/hf-config.ts';
import { exportHFModel } from '../io/hf-export.ts';
import { loadModelSource, mergedCopy } from '../infer/model-source.ts';
import { LlamaForCausalLM as LlamaDecoder } from '../nn/llama.ts';
import { loraLayers } from '../relora/wrap.ts';

/** Options of {@link LlamaForCausalLM.fromPretrained}. */
export interface FromPretrainedOptions {
  /**
   * Build the rotary tables for this many positions instead of the folder's
   * `max_position_embeddings` (saves memory for models configured for very long contexts).
   */
  maxSeqLen?: number;
}

/** Options of {@link LlamaForCausalLM.savePretrained}. */
export interface SavePretrainedOptions {
  /** Written as tokenizer.json (with a tokenizer_config.json naming its EOS token). */
  tokenizer?: Tokenizer | null;
  /** A tokenizer_config.json to write as is instead of the generated one. */
  tokenizerConfig?: Record<string, unknown> | null;
  /** Weight dtype in model.safetensors. Default `float32`. */
  dtype?: HFDtype;
  /** Replace the folder when it exists and is not empty. Default false. */
  overwrite?: boolean;
}

/**
 * A LLaMA causal language model, numerically the same as Hugging Face's `LlamaForCausalLM`
 * (pre-norm RMSNorm, rotary embeddings, SwiGLU, optional grouped-query attention and tied
 * embeddings), with Hugging Face parameter names.
 *
 * ```ts
 * const model = new LlamaForCausalLM(namedConfig('llama_9m', { vocabSize: 8000 })).initWeights(0);
 * const loss = model.loss(ids);            // ids: int32 Tensor [batch, seq]
 * await model.savePretrained('out/hf', { tokenizer });
 * const again = await LlamaForCausalLM.fromPretrained('out/hf');
 * ```
 */
export class LlamaForCausalLM extends LlamaDecoder {
  /**
   * Loads a model from a Hugging Face LLaMA folder (config.json, model.safetensors or shards,
   * float32/16/bfloat16), a relora run folder (its latest checkpoint) or one checkpoint folder.
   * LoRA factors in a checkpoint are merged into their weights, so the result is a plain model.
   * Every tensor is checked against the config before it is read; problems name the file.
   */
  static async fromPretrained(path: string, options: FromPretrainedOptions = {}): Promise<LlamaForCausalLM> {
    return asPublicModel((await loadModelSource(path, options)).model);
  }

  /**
   * Writes the model as a Hugging Face LLaMA folder that `transformers` loads with
   * `AutoModelForCausalLM.from_pretrained` (config.json, model.safetensors,
   * generation_config.json, and the tokenizer files when a tokenizer is given). A model wrapped
   * with ReLoRA is saved with every LoRA factor merged; the model itself is left unchanged.
   * The folder appears complete or not at all. Returns the paths written.
   */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<string[]> {
    return savePretrained(this, dir, options);
  }
}

/**
 * A model the internal loaders built, as the public class. The subclass adds methods only (no
 * fields), so re-tagging the object avoids holding a second copy of its weights.
 */
export function asPublicModel(model: LlamaDecoder): LlamaForCausalLM {
  return Object.setPrototypeOf(model, LlamaForCausalLM.prototype) as LlamaForCausalLM;
}

/** {@link LlamaForCausalLM.savePretrained} for any model, also one the internal classes built. */
export async function savePretrained(model: LlamaDecoder, dir: string, options: SavePretrainedOptions = {}): Promise<string[]> {
  const plain = loraLayers(model).size > 0 ? mergedCopy(model) : model;
  try {
    return await exportHFModel(plain, dir, options);
  } finally {
    if (plain !== model) plain.dispose();
  }
}
