/** `relora generate`: sample a continuation of a prompt, streamed to stdout token by token. */
import type { Command } from 'commander';
import { generate, TextStreamer } from '../../infer/generate.ts';
import { loadModelSource } from '../../infer/model-source.ts';
import { validateSampling } from '../../infer/sampling.ts';
import { parseFloatOption, parseIntOption, UsageError } from '../errors.ts';

interface GenerateFlags {
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  stopAtEos: boolean;
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('continue a prompt with a trained or Hugging Face model (KV cache; greedy at --temperature 0)')
    .argument('<source>', 'run folder (its newest checkpoint that verifies), checkpoint folder, or Hugging Face model folder')
    .requiredOption('--prompt <text>', 'text to continue')
    .option('--max-new-tokens <n>', 'tokens to generate at most', parseIntOption('--max-new-tokens', 0), 64)
    .option('--temperature <t>', 'softmax temperature; 0 = greedy', parseFloatOption('--temperature'), 1)
    .option('--top-k <k>', 'sample among the k most likely tokens; 0 = all', parseIntOption('--top-k', 0), 50)
    .option('--top-p <p>', 'sample among the most likely tokens holding probability p (nucleus); 1 = all', parseFloatOption('--top-p'), 1)
    .option('--seed <s>', 'random seed for sampling', parseIntOption('--seed', 0), 0)
    .option('--no-stop-at-eos', 'keep generating after an end-of-sequence token')
    .action(async (source: string, opts: GenerateFlags) => {
      try {
        validateSampling({ temperature: opts.temperature, topK: opts.topK, topP: opts.topP, seed: opts.seed });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      let src;
      try {
        src = await loadModelSource(source);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const tokenizer = src.tokenizer;
      if (!tokenizer) throw new UsageError(`${src.dir}: has no tokenizer.json, so a text prompt cannot be encoded`);
      const promptIds = tokenizer.encode(opts.prompt);
      let prompt = [...src.promptPrefix, ...promptIds];
      // An empty prompt starts a fresh document: the token that separates documents.
      if (prompt.length === 0) prompt = [src.eosIds[0] ?? tokenizer.eosId];
      const streamer = new TextStreamer((ids) => tokenizer.decode(ids), promptIds);
      const out = process.stdout;
      out.write(opts.prompt);
      const t0 = Date.now();
      let tFirst = 0;
      const ids = generate(src.model, prompt, {
        maxNewTokens: opts.maxNewTokens,
        temperature: opts.temperature,
        topK: opts.topK,
        topP: opts.topP,
        seed: opts.seed,
        stopIds: opts.stopAtEos ? src.eosIds : [],
        onToken: (id) => {
          if (!tFirst) tFirst = Date.now();
          out.write(streamer.push(id));
        },
      });
      out.write(`${streamer.flush()}\n`);
      const secs = (Date.now() - t0) / 1000;
      const decodeSecs = (Date.now() - (tFirst || t0)) / 1000;
      const perToken = ids.length > 1 ? ` (${((ids.length - 1) / Math.max(decodeSecs, 1e-9)).toFixed(1)} tokens/s after the first)` : '';
      process.stderr.write(`${ids.length} tokens from a ${prompt.length}-token prompt in ${secs.toFixed(2)} s${perToken}\n`);
      src.model.dispose();
    });
}
