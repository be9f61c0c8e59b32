/**
 * Export of a model source (run folder, checkpoint folder, Hugging Face folder) as a Hugging
 * Face folder, with the metadata it came with: a Hugging Face folder's own, or the one a run
 * initialised from such a folder keeps (RUN/hf_source/). The CLI and the library API share it.
 */
import { exportHFModel, type ExportOptions } from '../io/hf-export.ts';
import { hfSourceDir, readHfMetadata, type HfMetadata } from '../io/hf-metadata.ts';
import { loadModelSource, type ModelSource } from './model-source.ts';

/**
 * The Hugging Face metadata an export of `src` carries over; null for a
 * run trained from scratch, whose export gets generated metadata.
 */
export async function sourceMetadata(src: ModelSource): Promise<HfMetadata | null> {
  if (src.kind === 'huggingface') return readHfMetadata(src.dir);
  return src.runDir === undefined ? null : readHfMetadata(hfSourceDir(src.runDir));
}

/** The options exportModelSource takes: everything but what the source itself decides. */
export type SourceExportOptions = Omit<ExportOptions, 'metadata' | 'eosIds' | 'promptPrefix'>;

/**
 * Export options for a loaded source: its tokenizer, its metadata, and (for a model without
 * metadata) the BOS/EOS `relora generate` uses for it. `options.tokenizer` replaces the source's.
 */
export function sourceExportOptions(src: ModelSource, metadata: HfMetadata | null, options: SourceExportOptions = {}): ExportOptions {
  // Another tokenizer than the source's: the source's tokenizer.json is not the one to write.
  if (metadata && options.tokenizer) metadata = { ...metadata, files: new Map([...metadata.files].filter(([name]) => name !== 'tokenizer.json')) };
  return { ...options, tokenizer: options.tokenizer ?? src.tokenizer, metadata, eosIds: src.eosIds, promptPrefix: src.promptPrefix };
}

/** Loads `path` (LoRA factors merged) and writes it to `outDir` with its metadata. Returns the files written. */
export async function exportModelSource(path: string, outDir: string, options: SourceExportOptions = {}): Promise<string[]> {
  const src = await loadModelSource(path);
  try {
    return await exportHFModel(src.model, outDir, sourceExportOptions(src, await sourceMetadata(src), options));
  } finally {
    src.model.dispose();
  }
}
