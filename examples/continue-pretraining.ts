/**
 * Continue pre-training a Hugging Face LLaMA model with ReLoRA on your own files, then export
 * the result (every LoRA factor merged) as a Hugging Face folder again. `train` takes the same
 * keys as a `relora train` config file and calls back as the run goes.
 *
 *   npx tsx examples/continue-pretraining.ts HF_DIR DATA_FILES [RUN_DIR]
 *
 * HF_DIR holds config.json, model.safetensors (or shards) and tokenizer.json; DATA_FILES is a
 * .txt / .jsonl / .parquet file, folder or glob.
 */
import { exportHf, train } from 'relora';

const [hfDir, data, runDir = `runs/continued-${Date.now()}`] = process.argv.slice(2);
if (!hfDir || !data) throw new Error('usage: continue-pretraining.ts HF_DIR DATA_FILES [RUN_DIR]');

const summary = await train(
  {
    init_from: hfDir, data: [data], out: runDir,
    mode: 'relora', rank: 8, warm_start_steps: 0, steps: 40, cycle_length: 10, warmup_steps: 2, restart_warmup_steps: 2,
    seq_len: 64, micro_batch: 4, lr: 1e-3, eval_every: 10, save_every: 20,
  },
  {
    log: () => {},
    onEval: (e) => console.log(`update ${e.step}: validation perplexity ${e.perplexity.toFixed(2)}`),
    onRestart: (r) => console.log(`merge ${r.merges} after update ${r.step}`),
  },
);
console.log(`final validation perplexity ${summary.final_eval_ppl.toFixed(2)} after ${summary.steps} updates (${summary.merges} merges)`);

const files = await exportHf(runDir, `${runDir}/hf`);
console.log(`exported to ${runDir}/hf: ${files.map((f) => f.split('/').pop()).join(', ')}`);
