/**
 * Continue a prompt with a model: a Hugging Face folder, a relora run folder (its newest
 * checkpoint) or a checkpoint folder. The text is streamed as it is generated.
 *
 *   npx tsx examples/generate.ts MODEL_DIR ["prompt"]
 */
import { generateText, LlamaForCausalLM, Tokenizer } from 'relora';

const [modelDir, prompt = 'The'] = process.argv.slice(2);
if (!modelDir) throw new Error('usage: generate.ts MODEL_DIR ["prompt"]');

const model = await LlamaForCausalLM.fromPretrained(modelDir);
const tokenizer = await Tokenizer.fromPretrained(modelDir);
process.stdout.write(prompt);
generateText(model, tokenizer, prompt, {
  maxNewTokens: 40, temperature: 0.8, topK: 40, seed: 1,
  onText: (text) => process.stdout.write(text),
});
process.stdout.write('\n');
