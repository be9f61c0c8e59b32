/** `relora info`: parameter counts and training-state bytes of a model and mode. */
import type { Command } from 'commander';
import { namedConfig } from '../../nn/config.ts';
import { trainingFootprint } from '../../relora/accounting.ts';
import { parseMode, type WrapOptions } from '../../relora/wrap.ts';
import { allReduceBytesPerUpdate } from '../../parallel/gradients.ts';
import { resolveConfig } from '../../train/config.ts';
import { formatBytes } from '../../train/units.ts';
import { parseIntOption, UsageError } from '../errors.ts';

/** The LoRA layers `relora train` builds when no flag says otherwise: one source for both commands. */
function trainDefaults(): WrapOptions {
  const d = resolveConfig({}, 'default config');
  return { rank: d.rank, alpha: d.alpha, dropout: d.dropout, targetModules: d.target_modules };
}

export function register(program: Command): void {
  const defaults = trainDefaults();
  program
    .command('info')
    .description('parameter counts and the bytes of parameters, gradients and optimizer state training holds')
    .requiredOption('--model <name>', 'named model config, e.g. llama_60m')
    .option('--mode <mode>', 'full, lora or relora', 'full')
    .option('--rank <r>', 'LoRA rank (default: the one relora train uses)', parseIntOption('--rank'), defaults.rank)
    .option('--vocab-size <v>', 'vocabulary size', parseIntOption('--vocab-size'))
    .option('--json', 'print JSON')
    .action((opts: { model: string; mode: string; rank: number; vocabSize?: number; json?: boolean }) => {
      let fp;
      try {
        const cfg = namedConfig(opts.model, opts.vocabSize ? { vocabSize: opts.vocabSize } : {});
        fp = trainingFootprint(cfg, parseMode(opts.mode), { ...defaults, rank: opts.rank });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (opts.json) {
        // Data-parallel training all-reduces exactly the trainable gradients each update.
        process.stdout.write(`${JSON.stringify({ ...fp, allreduce_bytes_per_update: allReduceBytesPerUpdate(fp.params_trainable) })}\n`);
        return;
      }
      const rows: [string, string][] = [
        ['model', `${opts.model} (${opts.mode}${opts.mode === 'full' ? '' : `, rank ${opts.rank}`})`],
        ['parameters (total)', `${fp.params_total.toLocaleString('en-US')} (${(fp.params_total / 1e6).toFixed(1)}M)`],
        ...(fp.params_lora ? [['LoRA factors', `${fp.params_lora.toLocaleString('en-US')} (${(fp.params_lora / 1e6).toFixed(1)}M, held besides the model)`] as [string, string]] : []),
        ['parameters (trainable)', `${fp.params_trainable.toLocaleString('en-US')} (${(fp.params_trainable / 1e6).toFixed(1)}M)`],
        ['parameter bytes', `${formatBytes(fp.bytes_params)} (model + LoRA factors)`],
        ['gradient bytes', formatBytes(fp.bytes_grads)],
        ['optimizer bytes', formatBytes(fp.bytes_optimizer)],
        ['training state', formatBytes(fp.bytes_params + fp.bytes_grads + fp.bytes_optimizer)],
        ['all-reduced per update', `${formatBytes(allReduceBytesPerUpdate(fp.params_trainable))} (data parallel: the trainable gradients)`],
      ];
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(24)}${v}\n`);
    });
}
