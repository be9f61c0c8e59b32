/**
 * relora's side of the transformers interop check (tools/reference/interop_check.py drives it):
 *
 *   node --import tsx tools/reference/interop_driver.ts train-export WORK
 *     trains a small ReLoRA model on a generated corpus (WORK/run), exports it with
 *     `relora export` (WORK/hf, float32), and writes WORK/relora.json: the tokenizer's ids for
 *     the probe strings and the logits of the trained model (LoRA merged) on a fixed text.
 *
 *   node --import tsx tools/reference/interop_driver.ts init-export SRC WORK
 *     continues the Hugging Face folder SRC for a few ReLoRA updates (`train --init-from`,
 *     WORK/run), exports the run with `relora export` (WORK/hf), and writes WORK/relora.json:
 *     the special tokens `relora generate` prompts the run with, and the ids of the probe strings
 *     with them, for the check that transformers prompts the export the same way.
 *
 *   node --import tsx tools/reference/interop_driver.ts import REQUEST.json
 *     REQUEST = {dir, input_ids: [[...]], prompt: [...], new_tokens, out}: loads the Hugging Face
 *     folder `dir` with loadHFModel and writes to `out` the logits of input_ids and the greedy
 *     continuation of prompt (KV cache).
 *
 * Only numbers are produced here; every comparison happens in Python against transformers.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import * as exportCmd from '../../src/cli/commands/export.ts';
import { noGrad, scope, Tensor } from '../../src/engine/tensor.ts';
import { generate } from '../../src/infer/generate.ts';
import { loadModelSource } from '../../src/infer/model-source.ts';
import { loadHFModel } from '../../src/io/hf-model.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import type { LlamaForCausalLM } from '../../src/nn/llama.ts';
import { resolveConfig } from '../../src/train/config.ts';
import { train } from '../../src/train/trainer.ts';

/** Strings whose ids must agree: Unicode, emoji (with modifiers and ZWJ), whitespace runs, newlines, empty. */
export const PROBE_STRINGS = [
  '',
  'The quick brown fox jumps over the lazy dog.',
  'naïve café, Ångström, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어, عربى',
  'emoji 👋🏽 🇫🇷 👨‍👩‍👧‍👦 🤖✨ end',
  'runs   of    spaces\tand\t\ttabs',
  'line one\nline two\n\n\nafter blank lines\r\nwindows line\n',
  '    leading and trailing    ',
  '\n',
  ' ',
  '<|endoftext|> special token in text <|endoftext|>',
  "numbers 1234567890 3.14159 -42 and punctuation !?…—\"'",
];

export const LOGITS_TEXT = 'The river ran past the old mill, and the miller’s daughter 👋 counted the boats.';

function corpus(): string {
  const words = ['river', 'mill', 'boat', 'stone', 'bridge', 'garden', 'letter', 'winter', 'café', 'naïve', 'Straße', '日本', '👋', 'north', 'light'];
  const docs: string[] = [];
  let x = 12345;
  const next = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  for (let d = 0; d < 240; d++) {
    const sentences: string[] = [];
    for (let s = 0; s < 4; s++) {
      const len = 6 + next(8);
      const ws = Array.from({ length: len }, () => words[next(words.length)]);
      sentences.push(`The ${ws.join(' ')}.`);
    }
    docs.push(sentences.join(' '));
  }
  return `${docs.join('\n\n')}\n`;
}

function logitsOf(model: LlamaForCausalLM, ids: number[][]): number[] {
  return noGrad(() => scope(() => {
    const flat = Int32Array.from(ids.flat());
    return Array.from(model.eval().forward(Tensor.from(flat, [ids.length, ids[0].length])).data);
  }));
}

async function trainExport(work: string): Promise<void> {
  mkdirSync(work, { recursive: true });
  const data = join(work, 'corpus.txt');
  writeFileSync(data, corpus());
  process.env.RELORA_CACHE_DIR = join(work, 'cache');
  const runDir = join(work, 'run');
  const config = resolveConfig({
    model: { hidden_size: 64, intermediate_size: 176, num_heads: 4, num_layers: 2 },
    mode: 'relora', rank: 8, alpha: 16, dropout: 0, lr: 3e-3, warm_start_steps: 6, cycle_length: 5,
    warmup_steps: 2, restart_warmup_steps: 1, steps: 21, seq_len: 64, micro_batch: 4, eval_every: 100, eval_tokens: 256,
    save_every: 100, data: [data], txt_mode: 'blank-line', tokenizer_vocab_size: 400, seed: 7, backend: 'js', out: runDir,
  }, 'interop run');
  const summary = await train({ config, runDir, log: () => undefined });
  if (summary.merges < 1) throw new Error(`the interop run made ${summary.merges} merges; it should exercise ReLoRA`);

  // The real command, as `relora export RUN OUT --dtype float32` runs it.
  const hf = join(work, 'hf');
  const program = new Command('relora').exitOverride();
  exportCmd.register(program);
  await program.parseAsync(['export', runDir, hf, '--dtype', 'float32'], { from: 'user' });

  const src = await loadModelSource(runDir);
  const tok = src.tokenizer!;
  const textIds = tok.encode(LOGITS_TEXT);
  // The export is only a real test of merging if the checkpoint holds trained LoRA factors.
  const ckpt = await SafetensorsFile.open(join(src.dir, 'model.safetensors'));
  let maxB = 0;
  for (const name of ckpt.names().filter((n) => n.endsWith('.lora_B.weight'))) {
    for (const v of ckpt.readFloat32(name)) maxB = Math.max(maxB, Math.abs(v));
  }
  await ckpt.close();
  const result = {
    merges: summary.merges,
    checkpoint_max_abs_lora_b: maxB,
    vocab_size: src.model.config.vocabSize,
    eos_id: tok.eosId,
    text: LOGITS_TEXT,
    text_ids: textIds,
    logits: logitsOf(src.model, [textIds]),
    greedy_prompt: textIds.slice(0, 8),
    greedy: generate(src.model, textIds.slice(0, 8), { maxNewTokens: 20, temperature: 0 }),
    probes: PROBE_STRINGS.map((s) => ({ text: s, ids: tok.encode(s), decoded: tok.decode(tok.encode(s)) })),
  };
  writeFileSync(join(work, 'relora.json'), JSON.stringify(result));
}

async function initExport(source: string, work: string): Promise<void> {
  mkdirSync(work, { recursive: true });
  const data = join(work, 'corpus.txt');
  writeFileSync(data, corpus());
  process.env.RELORA_CACHE_DIR = join(work, 'cache');
  const runDir = join(work, 'run');
  const config = resolveConfig({
    init_from: source, mode: 'relora', rank: 2, alpha: 4, dropout: 0, lr: 1e-3, warm_start_steps: 0, cycle_length: 2,
    warmup_steps: 1, restart_warmup_steps: 1, steps: 4, seq_len: 64, micro_batch: 2, eval_every: 100, eval_tokens: 128,
    save_every: 100, data: [data], txt_mode: 'blank-line', seed: 7, backend: 'js', out: runDir,
  }, 'interop init-from run');
  await train({ config, runDir, log: () => undefined });
  const program = new Command('relora').exitOverride();
  exportCmd.register(program);
  await program.parseAsync(['export', runDir, join(work, 'hf'), '--dtype', 'float32'], { from: 'user' });
  const src = await loadModelSource(runDir);
  const tok = src.tokenizer!;
  const result = {
    prompt_prefix: src.promptPrefix,
    eos_ids: src.eosIds,
    probes: PROBE_STRINGS.filter((s) => s !== '').map((s) => ({ text: s, ids: [...src.promptPrefix, ...tok.encode(s)] })),
  };
  src.model.dispose();
  writeFileSync(join(work, 'relora.json'), JSON.stringify(result));
}

interface ImportRequest {
  dir: string;
  input_ids: number[][];
  prompt: number[];
  new_tokens: number;
  out: string;
}

async function importCheck(requestPath: string): Promise<void> {
  const req = JSON.parse(readFileSync(requestPath, 'utf8')) as ImportRequest;
  const { model, hfConfig } = await loadHFModel(req.dir);
  const result = {
    dtype: hfConfig.torch_dtype,
    num_key_value_heads: hfConfig.num_key_value_heads,
    tie_word_embeddings: model.config.tieWordEmbeddings,
    logits: logitsOf(model, req.input_ids),
    greedy: generate(model, req.prompt, { maxNewTokens: req.new_tokens, temperature: 0 }),
  };
  writeFileSync(req.out, JSON.stringify(result));
}

const [cmd, arg, arg2] = process.argv.slice(2);
if (cmd === 'train-export' && arg) await trainExport(arg);
else if (cmd === 'init-export' && arg && arg2) await initExport(arg, arg2);
else if (cmd === 'import' && arg) await importCheck(arg);
else {
  process.stderr.write('usage: interop_driver.ts train-export WORK | init-export SRC WORK | import REQUEST.json\n');
  process.exit(2);
}
