/** Export of any model source (run, checkpoint, Hugging Face folder, model in memory) as a Hugging Face folder. */
import { exportModelSource } from '../infer/export-source.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { savePretrained, type SavePretrainedOptions } from './model.ts';

/**
 * Writes a model as a Hugging Face LLaMA folder that `transformers` loads. `source` is a relora
 * run folder (its newest checkpoint), a checkpoint folder or a Hugging Face folder — exported
 * with its own tokenizer, every LoRA factor merged — or a model in memory (then pass the
 * tokenizer in `options`). Returns the paths written.
 */
export async function exportHf(source: string | LlamaForCausalLM, outDir: string, options: SavePretrainedOptions = {}): Promise<string[]> {
  if (typeof source !== 'string') return savePretrained(source, outDir, options);
  return exportModelSource(source, outDir, options);
}
