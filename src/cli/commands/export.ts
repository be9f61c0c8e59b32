/** `relora export`: a run, checkpoint or Hugging Face folder as a Hugging Face LLaMA folder, LoRA merged. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { HFDtype } from '../../io/hf-config.ts';
import { exportHFModel } from '../../io/hf-export.ts';
import type { HfMetadata } from '../../io/hf-metadata.ts';
import { sourceExportOptions, sourceMetadata } from '../../infer/export-source.ts';
import { loadModelSource, type ModelSource } from '../../infer/model-source.ts';
import { UsageError } from '../errors.ts';

const DTYPES: readonly HFDtype[] = ['float32', 'float16', 'bfloat16'];

export function register(program: Command): void {
  program
    .command('export')
    .description('write a trained model (every LoRA factor merged) as a Hugging Face LLaMA folder that transformers loads; ' +
      'a model that came from a Hugging Face folder keeps that folder\'s metadata (BOS/EOS ids, context length, tokenizer settings)')
    .argument('<source>', 'run folder (its latest checkpoint), checkpoint folder, or Hugging Face model folder')
    .argument('<out_dir>', 'folder to create: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json')
    .option('--dtype <dtype>', `weight dtype: ${DTYPES.join(', ')}`, 'float32')
    .option('--force', 'replace out_dir if it exists and is not empty')
    .action(async (source: string, outDir: string, opts: { dtype: string; force?: boolean }) => {
      if (!(DTYPES as readonly string[]).includes(opts.dtype)) throw new UsageError(`--dtype: unknown value "${opts.dtype}"; expected one of ${DTYPES.join(', ')}`);
      let src: ModelSource, metadata: HfMetadata | null;
      try {
        src = await loadModelSource(source);
        metadata = await sourceMetadata(src);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (!src.tokenizer) process.stderr.write(`warning: ${src.dir} has no tokenizer; the export has none either\n`);
      const target = resolve(outDir);
      const t0 = Date.now();
      const files = await exportHFModel(src.model, target, sourceExportOptions(src, metadata, {
        dtype: opts.dtype as HFDtype,
        overwrite: Boolean(opts.force),
        log: (msg) => process.stderr.write(`note: ${msg}\n`),
      }));
      const params = src.model.parameters().reduce((n, t) => n + t.size, 0);
      process.stdout.write(`exported ${src.dir} -> ${target} (${params.toLocaleString('en-US')} parameters, ${opts.dtype}, ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
      for (const f of files) process.stdout.write(`  ${f}\n`);
      src.model.dispose();
    });
}
