/** `relora eval CHECKPOINT [--data ...]`: validation loss and perplexity of a checkpoint. */
import type { Command } from 'commander';
import { loadCheckpoint } from '../../train/checkpoint.ts';
import { resolveConfig, type TrainConfig } from '../../train/config.ts';
import { prepareData } from '../../train/data.ts';
import { evaluate, evaluationSequences } from '../../train/evaluate.ts';
import { openCheckpoint, readRunConfig, readRunModelConfig, runFile } from '../../train/run-folder.ts';
import { LlamaForCausalLM } from '../../nn/llama.ts';
import { setBackend } from '../../engine/backend.ts';
import { loraStreams, wrapWithLora } from '../../relora/wrap.ts';
import { UsageError } from '../errors.ts';

/**
 * A checkpoint folder, or a run folder (its newest valid checkpoint, as for --resume, export and
 * generate). Returns it and the run folder; a path that is neither is a usage error.
 */
export function locateCheckpoint(path: string, warn: (s: string) => void): { ck: ReturnType<typeof loadCheckpoint>; runDir: string } {
  let opened;
  try {
    opened = openCheckpoint(path, loadCheckpoint, warn, 'eval');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return { ck: opened.value, runDir: opened.runDir };
}

export async function evaluateCheckpoint(path: string, overrides: { data?: string[]; textField?: string; evalTokens?: number }, log: (s: string) => void) {
  const { ck, runDir } = locateCheckpoint(path, (s) => log(`warning: ${s}`));
  const saved = readRunConfig(runDir);
  let cfg: TrainConfig = saved;
  if (overrides.data || overrides.evalTokens || overrides.textField) {
    const { grad_accum: _derived, ...raw } = saved as TrainConfig & Record<string, unknown>;
    if (overrides.data) raw.validation = overrides.data;
    if (overrides.textField) raw.text_field = overrides.textField;
    if (overrides.evalTokens) raw.eval_tokens = overrides.evalTokens;
    cfg = resolveConfig(raw, 'eval options');
  }
  setBackend(cfg.backend, cfg.threads);
  const data = await prepareData(cfg, log, runFile(runDir, 'tokenizer'));
  const model = new LlamaForCausalLM(readRunModelConfig(runDir, data.tokenizer.vocabSize));
  if (ck.state.phase !== 'full') wrapWithLora(model, { rank: cfg.rank, alpha: cfg.alpha, dropout: cfg.dropout, targetModules: cfg.target_modules }, loraStreams(cfg.seed));
  model.loadStateDict(ck.model, true, `${ck.dir}/model.safetensors`);
  const seqs = evaluationSequences(data.validation, cfg.seq_len, cfg.eval_tokens);
  const loss = evaluate(model, seqs, cfg.seq_len, cfg.micro_batch);
  model.dispose();
  return { checkpoint: ck.dir, step: ck.state.step, data: data.validationName, sequences: seqs.length, seq_len: cfg.seq_len, eval_loss: loss, eval_ppl: Math.exp(loss) };
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('validation loss and perplexity of a checkpoint (or of a run folder\'s latest checkpoint)')
    .argument('<checkpoint>', 'checkpoint folder, or run folder (its newest checkpoint that verifies; newer ones that do not are passed over with a warning)')
    .option('--data <sources>', 'evaluate on these files/folders/globs (comma-separated) instead of the run\'s validation data')
    .option('--text-field <name>', 'JSONL field / Parquet column with the text')
    .option('--eval-tokens <n>', 'how many tokens to evaluate (whole sequences)')
    .option('--json', 'print JSON')
    .action(async (path: string, opts: { data?: string; textField?: string; evalTokens?: string; json?: boolean }) => {
      const r = await evaluateCheckpoint(path, {
        data: opts.data?.split(',').map((s) => s.trim()).filter(Boolean),
        textField: opts.textField,
        evalTokens: opts.evalTokens ? Number(opts.evalTokens) : undefined,
      }, (s) => process.stderr.write(`${s}\n`));
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`${r.checkpoint} (update ${r.step}) on ${r.data}: ${r.sequences} sequences of ${r.seq_len} tokens\nloss ${r.eval_loss.toFixed(4)}, perplexity ${r.eval_ppl.toFixed(2)}\n`);
    });
}
