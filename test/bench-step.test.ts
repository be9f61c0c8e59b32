import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { compareTable, ratioTable, stepRatios, summarize, type CompareCase } from '../src/bench/compare.ts';
import { parseBenchMode, parseRecord, oursCommand, ratioCommand, torchCommand, type BenchRecord } from '../src/bench/child.ts';
import { stepFlops } from '../src/bench/flops.ts';
import { profileKernels } from '../src/bench/profile.ts';
import { configsBySize, estimatePeakBytes, pointArgs, scalingTable, type ScalingPoint } from '../src/bench/scaling.ts';
import { runStepBench } from '../src/bench/step-bench.ts';
import { runStepRatio, type StepRatioRecord } from '../src/bench/step-ratio.ts';
import { spread } from '../src/bench/stats.ts';
import { formatTable } from '../src/bench/table.ts';
import { K } from '../src/engine/backend.ts';
import { countParameters, namedConfig } from '../src/nn/config.ts';
import { trainingFootprint } from '../src/relora/accounting.ts';
import { DEFAULT_LORA } from '../src/relora/wrap.ts';

test('full-rank step FLOPs are 6 per weight per token plus causal attention', () => {
  const cfg = namedConfig('llama_60m');
  const B = 3, T = 128, tok = B * T;
  const { vocabSize: V, hiddenSize: d, numLayers: L } = cfg;
  // Every parameter except the embedding table and the norm weights sits in a product.
  const inProducts = countParameters(cfg) - V * d - (2 * L + 1) * d;
  assert.equal(stepFlops(cfg, 'full', 128, B, T), 6 * tok * inProducts + 6 * B * d * T * T * L);
});

test('LoRA step FLOPs drop dW of the frozen weights and add the rank-r factors', () => {
  const cfg = namedConfig('llama_20m');
  const r = 16, B = 2, T = 64, tok = B * T;
  const d = cfg.hiddenSize, f = cfg.intermediateSize;
  const frozen = 4 * d * d + 3 * d * f;
  const factorsInOut = r * (4 * 2 * d + 3 * (d + f));
  const expected = stepFlops(cfg, 'full', r, B, T) - cfg.numLayers * (2 * tok * frozen - 6 * tok * factorsInOut);
  assert.equal(stepFlops(cfg, 'relora', r, B, T), expected);
  assert.equal(stepFlops(cfg, 'lora', r, B, T), expected);
});

test('without LoRA dropout, step FLOPs count the merged order where it has fewer FLOPs', () => {
  const cfg = namedConfig('llama_60m');
  const r = 128, B = 8, T = 256, tok = B * T;
  const d = cfg.hiddenSize, f = cfg.intermediateSize;
  const shapes = [[d, d], [d, d], [d, d], [d, d], [d, f], [d, f], [f, d]];
  // Merged: W + s·B·A formed in forward and backward (4·r·in·out) instead of the branch's
  // forward product and its share of dX (2·T·r·(in+out)).
  const saved = shapes.reduce((a, [i, o]) => a + 2 * tok * r * (i + o) - 4 * r * i * o, 0);
  assert.equal(stepFlops(cfg, 'relora', r, B, T, false), stepFlops(cfg, 'relora', r, B, T, true) - cfg.numLayers * saved);
  // Few tokens: the factored order is cheaper, with or without dropout.
  assert.equal(stepFlops(cfg, 'relora', r, 1, 16, false), stepFlops(cfg, 'relora', r, 1, 16, true));
});

test('spread reports median, extremes and interquartile range', () => {
  assert.deepEqual(spread([5, 1, 3, 2, 4]), { median: 3, min: 1, max: 5, iqr: 2 });
  assert.deepEqual(spread([7]), { median: 7, min: 7, max: 7, iqr: 0 });
  assert.throws(() => spread([]), /no samples/);
});

test('bench step runs the real training step and reports what it measured', () => {
  const r = runStepBench({ model: 'llama_9m', mode: 'relora', rank: 8, seqLen: 16, microBatch: 2, steps: 3, warmup: 1, vocabSize: 256, gemmReps: 0 });
  const cfg = namedConfig('llama_9m', { vocabSize: 256, maxSeqLen: 16 });
  const fp = trainingFootprint(cfg, 'relora', { ...DEFAULT_LORA, rank: 8 });
  assert.equal(r.state_bytes, fp.bytes_params + fp.bytes_grads + fp.bytes_optimizer);
  assert.equal(r.params_trainable, fp.params_trainable);
  assert.equal(r.tokens_per_step, 32);
  assert.equal(r.lora_dropout, DEFAULT_LORA.dropout);
  assert.ok(r.step_ms_min <= r.step_ms_median && r.step_ms_median <= r.step_ms_max);
  assert.ok(Math.abs(r.tokens_per_s - 32 / (r.step_ms_median / 1000)) < 1e-6 * r.tokens_per_s);
  assert.equal(r.model_flops_per_step, stepFlops(cfg, 'relora', 8, 2, 16));
  assert.ok(r.peak_rss_bytes > 0);
  assert.equal(r.mfu, null);
  // Three timed updates on random tokens: the loss starts near ln(256) and moves.
  assert.ok(Math.abs(r.loss_first - Math.log(256)) < 0.5, `first loss ${r.loss_first}`);
  assert.notEqual(r.loss_last, r.loss_first);
  assert.throws(() => runStepBench({ model: 'llama_9m', mode: 'full', rank: 8, seqLen: 0, microBatch: 1, steps: 1, warmup: 0, gemmReps: 0 }), /seqLen must be a positive integer/);
  assert.throws(() => runStepBench({ model: 'llama_nope', mode: 'full', rank: 8, seqLen: 8, microBatch: 1, steps: 1, warmup: 0, gemmReps: 0 }), /unknown model "llama_nope"/);
});

test('MFU is achieved FLOP/s over the GEMM peak measured in the same process', () => {
  const r = runStepBench({ model: 'llama_9m', mode: 'full', rank: 8, seqLen: 8, microBatch: 1, steps: 1, warmup: 0, vocabSize: 64, gemmReps: 1 });
  assert.ok(r.gemm_peak_gflops! > 0);
  assert.ok(Math.abs(r.mfu! - r.achieved_gflops / r.gemm_peak_gflops!) < 1e-12);
});

test('the kernel profiler counts calls by kernel and GEMM shape, and restores the kernels', () => {
  const k = K();
  const original = k.add;
  const p = profileKernels(k);
  const a = new Float32Array(6).fill(1), c = new Float32Array(4);
  k.add(a, a, a, 6);
  k.add(a, a, a, 6);
  k.gemm(false, true, 2, 2, 3, 1, a, 3, 0, a, 3, 0, 0, c, 2, 0, 1);
  const rep = p.report();
  assert.equal(rep.find((e) => e.kernel === 'add')?.calls, 2);
  assert.equal(rep.find((e) => e.kernel === 'gemm NT 2×2×3')?.calls, 1);
  // add wrote a + a into a twice (all 4s), so each entry is 3 · 4 · 4.
  assert.deepEqual([...c], [48, 48, 48, 48]);
  p.reset();
  assert.equal(p.report().length, 0);
  p.stop();
  assert.equal(k.add, original);
});

test('relora bench step --json prints the documented fields', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'bench', 'step', '--model', 'llama_9m', '--mode', 'lora',
    '--rank', '4', '--seq-len', '8', '--micro-batch', '1', '--steps', '2', '--warmup', '0', '--vocab-size', '64', '--gemm-reps', '0', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const rec = parseRecord(r.stdout)!;
  for (const k of ['tokens_per_s', 'step_ms_median', 'peak_rss_bytes', 'state_bytes', 'mfu']) assert.ok(k in rec, `field ${k}`);
  assert.equal(rec.mode, 'lora');
  const bad = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'bench', 'step', '--model', 'llama_9m', '--mode', 'half'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /mode: unknown value "half"/);
});

test('benchmark scripts answer a bad flag or value with a usage error, not a stack trace', () => {
  for (const [script, argv, want] of [
    ['scripts/bench-compare.ts', ['--rounds', 'x'], /--rounds: expected an integer >= 1, got "x"/],
    ['scripts/bench-scaling.ts', ['--bogus'], /Unknown option '--bogus'/],
    ['scripts/study.ts', ['--nope'], /Unknown option '--nope'/],
  ] as const) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...argv], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${script}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${script} printed a stack trace`);
  }
});

test('child commands pass the same step to both sides', () => {
  const args = { model: 'llama_20m', mode: 'relora', seqLen: 256, microBatch: 8, steps: 5, warmup: 2, threads: 2 };
  const [, ours] = oursCommand(args), [, torch] = torchCommand(args);
  const flags = (argv: string[]): string => argv.slice(argv.indexOf('--model')).join(' ');
  assert.equal(flags(ours), flags(torch));
  assert.deepEqual(ours.slice(ours.indexOf('--threads'), ours.indexOf('--threads') + 2), ['--threads', '2']);
  // Ours always on the native backend: auto would fall back to js when the addon is stale.
  assert.deepEqual(ours.slice(ours.indexOf('--backend'), ours.indexOf('--backend') + 2), ['--backend', 'native']);
  assert.ok(ratioCommand(args)[1].includes('native'));
  assert.deepEqual(torch.slice(torch.indexOf('--threads'), torch.indexOf('--threads') + 2), ['--threads', '2']);
  assert.equal(parseRecord('warming up\n{"tokens_per_s": 5, "x": 1}\n')!.tokens_per_s, 5);
  assert.equal(parseRecord('{"no": 1}\nnot json {'), null);
});

function rec(impl: 'relora' | 'pytorch', model: string, mode: string, tps: number, rss: number): BenchRecord {
  return { impl, model, mode, seq_len: 256, micro_batch: 8, threads: 2, tokens_per_s: tps, step_ms_median: 2048e3 / tps, step_ms_min: 0, step_ms_max: 0, peak_rss_bytes: rss, state_bytes: 1, mfu: 0.5 };
}

test('compare summarises medians per side and relora/full step ratios', () => {
  const cases: CompareCase[] = [
    { model: 'm', mode: 'full', ours: [rec('relora', 'm', 'full', 1000, 2 ** 30)], torch: [rec('pytorch', 'm', 'full', 500, 2 ** 31)], errors: [], busyBefore: 0 },
    { model: 'm', mode: 'relora', ours: [rec('relora', 'm', 'relora', 1250, 2 ** 29), rec('relora', 'm', 'relora', 1000, 2 ** 29), rec('relora', 'm', 'relora', 2000, 2 ** 29)], torch: [], errors: ['pytorch: exit status 1'], busyBefore: 0 },
  ];
  const s = cases.map((c) => summarize(c));
  assert.equal(s[0].ratio, 2);
  assert.equal(s[1].ours_tokens_per_s, 1250);
  assert.equal(s[1].ratio, null);
  assert.deepEqual(stepRatios(s), [{ model: 'm', mode: 'relora', ratio: 0.8 }]);
  const table = compareTable(s);
  assert.match(table, /m\s+full\s+1000\.0\s+500\.0\s+2\.00×\s+1024 MiB\s+2048 MiB/);
  assert.match(ratioTable(s, true), /\| m +\| relora\/full \| +0\.80 \| +- \|/);
  // The interleaved measurement, when there is one, gets its own column.
  const record = { ratio_of_medians: 0.9, pair_ratio_min: 0.85, pair_ratio_max: 0.97 } as StepRatioRecord;
  assert.match(ratioTable(s, true, [{ model: 'm', mode: 'relora', record, error: null }]), /\| m +\| relora\/full \| +0\.80 \| +- \| 0\.90 \(pairs 0\.85–0\.97\) \|/);
  assert.match(ratioTable(s, false, [{ model: 'm', mode: 'relora', record: null, error: 'exit status 1' }]), /relora, interleaved\n.*\nm\s+relora\/full\s+0\.80\s+-\s+-$/);
});

test('tables align columns, in plain text and Markdown', () => {
  assert.equal(formatTable(['a', 'bb'], [['xyz', '1']]), 'a    bb\n---  --\nxyz   1');
  assert.equal(formatTable(['a', 'bb'], [['xyz', '1']], true), '| a   | bb |\n|:----|---:|\n| xyz |  1 |');
});

test('scaling: configs ordered by size, generous memory estimates, RSS saved per size', () => {
  const order = configsBySize();
  assert.equal(order[0], 'llama_1b');
  assert.equal(order[order.length - 1], 'llama_9m');
  const cfg = namedConfig('llama_60m');
  const fp = trainingFootprint(cfg, 'full', DEFAULT_LORA);
  assert.ok(estimatePeakBytes('llama_60m', 'full', 1, 256) > fp.bytes_params + fp.bytes_grads + fp.bytes_optimizer);
  assert.ok(estimatePeakBytes('llama_1b', 'relora', 1, 256) < estimatePeakBytes('llama_1b', 'full', 1, 256));
  const pts: ScalingPoint[] = [
    { model: 'x', mode: 'full', seqLen: 256, microBatch: 8, record: rec('relora', 'x', 'full', 100, 3 * 2 ** 20), error: null },
    { model: 'x', mode: 'relora', seqLen: 256, microBatch: 8, record: rec('relora', 'x', 'relora', 200, 2 ** 20), error: null },
  ];
  assert.match(scalingTable(pts, 'model'), /x\s+100\.0\s+200\.0\s+0\.50\s+3 MiB\s+1 MiB\s+2 MiB/);
});

test('bench modes: relora-bf16 runs relora with --frozen-bf16 on both sides', () => {
  assert.deepEqual(parseBenchMode('relora-bf16'), { mode: 'relora', frozenBf16: true });
  assert.deepEqual(parseBenchMode('full'), { mode: 'full', frozenBf16: false });
  assert.throws(() => parseBenchMode('full-bf16'), /unknown value "full-bf16"/);
  const args = { model: 'llama_20m', mode: 'relora', frozenBf16: true, seqLen: 256, microBatch: 8, steps: 5, warmup: 2, threads: 2 };
  assert.ok(oursCommand(args)[1].includes('--frozen-bf16'));
  assert.ok(torchCommand(args)[1].includes('--frozen-bf16'));
  const [, ratio] = ratioCommand({ ...args, rank: 32 });
  assert.deepEqual(ratio.slice(ratio.indexOf('bench')), ['bench', 'ratio', '--model', 'llama_20m', '--seq-len', '256', '--micro-batch', '8', '--steps', '5', '--warmup', '2', '--json', '--rank', '32', '--frozen-bf16']);
  assert.equal(parseRecord<StepRatioRecord>('pair 1\n{"ratio_of_medians": 0.8}', 'ratio_of_medians')!.ratio_of_medians, 0.8);
  assert.equal(parseRecord('{"ratio_of_medians": 0.8}'), null);
});

test('compare: the best round is the one with the highest tokens/s, with its own RSS', () => {
  const c: CompareCase = {
    model: 'm', mode: 'full', ours: [rec('relora', 'm', 'full', 900, 3), rec('relora', 'm', 'full', 1000, 5), rec('relora', 'm', 'full', 100, 7)],
    torch: [rec('pytorch', 'm', 'full', 400, 1), rec('pytorch', 'm', 'full', 500, 2)], errors: [], busyBefore: 0,
  };
  const best = summarize(c, 'best'), med = summarize(c, 'median');
  assert.equal(best.ours_tokens_per_s, 1000);
  assert.equal(best.ours_peak_rss_bytes, 5);
  assert.equal(best.ratio, 2);
  assert.equal(med.ours_tokens_per_s, 900);
  assert.equal(med.torch_tokens_per_s, 450);
});

test('bench ratio alternates real full and relora steps in one process and reports their ratio', () => {
  const lines: string[] = [];
  const r = runStepRatio({ model: 'llama_9m', rank: 8, seqLen: 16, microBatch: 2, steps: 4, warmup: 1, vocabSize: 256 }, (l) => lines.push(l));
  assert.equal(r.pairs, 4);
  assert.equal(lines.length, 5);
  assert.match(lines[0], /^pair 1\/5 \(warm-up\): full \d+ ms, relora \d+ ms, ratio [\d.]+$/);
  const pairRatios = lines.slice(1).map((l) => Number(/ratio ([\d.]+)$/.exec(l)![1]));
  assert.ok(r.pair_ratio_min <= r.pair_ratio_median && r.pair_ratio_median <= r.pair_ratio_max);
  assert.ok(Math.abs(r.pair_ratio_min - Math.min(...pairRatios)) < 1e-3 && Math.abs(r.pair_ratio_max - Math.max(...pairRatios)) < 1e-3);
  assert.ok(Math.abs(r.ratio_of_medians - r.relora_ms_median / r.full_ms_median) < 1e-12);
  const cfg = namedConfig('llama_9m', { vocabSize: 256, maxSeqLen: 16 });
  assert.equal(r.flop_ratio, stepFlops(cfg, 'relora', 8, 2, 16) / stepFlops(cfg, 'full', 8, 2, 16));
  assert.equal(r.lora_dropout, DEFAULT_LORA.dropout);
  // Without dropout, 256 tokens put every llama_9m projection in the merged order: fewer FLOPs.
  const m = runStepRatio({ model: 'llama_9m', rank: 8, seqLen: 64, microBatch: 4, steps: 1, warmup: 0, vocabSize: 256, loraDropout: 0 });
  const cfg64 = namedConfig('llama_9m', { vocabSize: 256, maxSeqLen: 64 });
  assert.equal(m.lora_dropout, 0);
  assert.equal(m.flop_ratio, stepFlops(cfg64, 'relora', 8, 4, 64, false) / stepFlops(cfg64, 'full', 8, 4, 64));
  assert.ok(stepFlops(cfg64, 'relora', 8, 4, 64, false) < stepFlops(cfg64, 'relora', 8, 4, 64, true));
  assert.throws(() => runStepRatio({ model: 'llama_9m', rank: 0, seqLen: 16, microBatch: 2, steps: 1, warmup: 0 }), /rank must be a positive integer/);
  assert.throws(() => runStepRatio({ model: 'llama_9m', rank: 8, seqLen: 16, microBatch: 2, steps: 1, warmup: 0, loraDropout: 1 }), /lora dropout must be in \[0, 1\), got 1/);
});

test('bench:scaling --rank and --lora-dropout reach the relora points only', () => {
  const o = { microBatch: 8, contextTokens: 2048, steps: 2, warmup: 1, threads: 2, quiet: { maxBusy: 1, maxWaitMs: 0 }, memoryFraction: 0.85, rank: 32, loraDropout: 0 };
  const relora = oursCommand(pointArgs(o, 'llama_9m', 'relora', 256, 8))[1], full = oursCommand(pointArgs(o, 'llama_9m', 'full', 256, 8))[1];
  const flag = (argv: string[], name: string) => argv.slice(argv.indexOf(name), argv.indexOf(name) + 2);
  assert.deepEqual(flag(relora, '--rank'), ['--rank', '32']);
  assert.deepEqual(flag(relora, '--lora-dropout'), ['--lora-dropout', '0']);
  assert.ok(!full.includes('--rank') && !full.includes('--lora-dropout'));
  const defaults = oursCommand(pointArgs({ ...o, rank: undefined, loraDropout: undefined }, 'llama_9m', 'relora', 256, 8))[1];
  assert.ok(!defaults.includes('--rank') && !defaults.includes('--lora-dropout'));
});

test('compare setups: each relora setup against PyTorch\'s fastest, precision and compile reach the child commands', async () => {
  const { parseRowMode, setupArgs, setupTable, summarizeRow, SETUPS } = await import('../src/bench/compare-setups.ts');
  assert.deepEqual(parseRowMode('relora:r32'), { mode: 'relora', rank: 32 });
  assert.deepEqual(parseRowMode('relora'), { mode: 'relora', rank: 128 });
  assert.throws(() => parseRowMode('lora:r8'), /unknown value "lora:r8"/);
  const o = { rows: [], setups: SETUPS, seqLen: 256, microBatch: 8, steps: 5, warmup: 2, threads: 2, rounds: 1, loraDropout: 0.1, quiet: { maxBusy: 1, maxWaitMs: 0 } };
  const row = { model: 'm', mode: 'relora' as const, rank: 32 };
  const compileBf16 = torchCommand(setupArgs(o, row, SETUPS.find((s) => s.label === 'PyTorch compile bf16')!))[1];
  assert.ok(compileBf16.includes('--compile'));
  assert.deepEqual(compileBf16.slice(compileBf16.indexOf('--precision'), compileBf16.indexOf('--precision') + 2), ['--precision', 'bf16']);
  const ours = oursCommand(setupArgs(o, row, SETUPS[1]))[1];
  assert.ok(!ours.includes('--compile') && ours.includes('bf16') && ours.includes('32'));
  const r = (tps: number, rss: number, compileS = 0): BenchRecord => ({ ...rec('pytorch', 'm', 'relora', tps, rss), mfu_bf16: 0.1, compile_s: compileS });
  const records = { 'relora fp32': [r(900, 1)], 'relora bf16': [r(1300, 2 ** 20), r(1200, 2)], 'PyTorch eager fp32': [r(500, 3)], 'PyTorch autocast bf16': [r(1000, 2 ** 21)], 'PyTorch compile bf16': [r(800, 5, 42)] };
  const s = summarizeRow({ ...row, records, errors: ['PyTorch compile fp32: exit status 1'], busyBefore: 0 }, SETUPS);
  assert.equal(s.torchFastest, 'PyTorch autocast bf16');
  assert.equal(s.reloraFastest, 'relora bf16');
  assert.equal(s.ratio, 1.3);
  assert.match(setupTable([s], SETUPS), /m\s+relora r32\s+900\s+1300\s+500\s+1000\s+-\s+800\s+autocast bf16\s+0\.90×\s+1\.30×\s+1 MiB \/ 2 MiB\s+50% \/ 10%\s+50% \/ 10%\s+42$/m);
});
