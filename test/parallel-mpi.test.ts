/**
 * Data-parallel training under mpirun (Open MPI): 2 and 3 processes train the same model as one
 * process does with the same global batch, communicate exactly the trainable gradients, and
 * refuse to start when something is wrong (faults and resumes: test/e2e/parallel-faults.test.ts).
 * Skipped, with the reason, where mpirun is absent.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exactDifferences, metrics, mpirun, mpiUnavailable, numericDifferences, parallelRunArgs } from './fixtures/parallel/mpi-harness.ts';
import { runCli, tempDir, writeCorpus } from './fixtures/reliability/harness.ts';

const skip = mpiUnavailable() ?? false;
let dir = '', data = '', single = '';

before(async () => {
  if (skip) return;
  dir = tempDir('parallel');
  data = writeCorpus(dir);
  single = join(dir, 'n1');
  const r = await runCli(parallelRunArgs(data, single));
  assert.equal(r.code, 0, r.stderr);
});

test('mpirun -np 2 and -np 3 train what one process trains: every loss and the final weights within 1e-5 (ReLoRA, two merges)', { skip }, async () => {
  for (const np of [2, 3]) {
    const out = join(dir, `n${np}`);
    const r = await mpirun([{ np, args: parallelRunArgs(data, out) }]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`data parallel: ${np} processes`));
    assert.deepEqual(numericDifferences(single, out, 1e-5), [], `N=${np} vs N=1`);
    const last = metrics(out).filter((m) => m.type === 'train').at(-1)!;
    assert.equal(last.merges, 2);
    assert.equal(last.ranks, np);
    // Only rank 0 wrote: one record per update, one summary.
    assert.equal(metrics(out).filter((m) => m.type === 'train').length, 16);
  }
  // The comparison is not vacuous: a run with another learning rate is far off.
  const other = join(dir, 'n1-lr');
  assert.equal((await runCli(parallelRunArgs(data, other, ['--seed', '7']))).code, 0);
  assert.notDeepEqual(numericDifferences(single, other, 1e-5), []);
});

test('with the optimizer state sharded (--shard-optimizer, ZeRO stage 1), 2 processes train bit for bit what they train unsharded, 3 within 1e-5, the checkpoint holding every moment', { skip }, async () => {
  for (const np of [2, 3]) {
    const plain = join(dir, `n${np}`);
    if (!existsSync(join(plain, 'metrics.jsonl'))) assert.equal((await mpirun([{ np, args: parallelRunArgs(data, plain) }])).code, 0);
    const sharded = join(dir, `n${np}-sharded`);
    const r = await mpirun([{ np, args: parallelRunArgs(data, sharded, ['--shard-optimizer']) }]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`data parallel: ${np} processes .*optimizer state sharded over them`));
    assert.equal(metrics(sharded).filter((m) => m.type === 'train').at(-1)!.merges, 2);
    // Two ranks' sums are the same in any order: every update's record, the final weights and
    // optimizer.safetensors (all moments, collected by rank 0) are bit for bit the unsharded ones.
    // Three ranks' reduce adds in another order than their all-reduce: within 1e-5.
    assert.deepEqual(np === 2 ? exactDifferences(plain, sharded) : numericDifferences(plain, sharded, 1e-5), [], `N=${np}`);
  }
});

test('with LoRA dropout 0.1, 2 and 3 processes draw the masks one process draws: every loss and the final weights within 1e-5', { skip }, async () => {
  const dropout = ['--dropout', '0.1'];
  const alone = join(dir, 'dropout-n1');
  assert.equal((await runCli(parallelRunArgs(data, alone, dropout))).code, 0);
  // Rank 1 of 2 holds sequences 3–5 of 6: its first micro-batch is the second half of one process's second.
  for (const np of [2, 3]) {
    const out = join(dir, `dropout-n${np}`);
    const r = await mpirun([{ np, args: parallelRunArgs(data, out, dropout) }]);
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(numericDifferences(alone, out, 1e-5), [], `N=${np}`);
  }
  // Dropout did change the run (the comparison is not the dropout-free one again).
  assert.notDeepEqual(numericDifferences(alone, single, 1e-5), []);
});

test('the bytes all-reduced per update are the trainable gradients relora info names: all weights in the warm start, no frozen W in ReLoRA', { skip }, async () => {
  const run = join(dir, 'n2');
  if (!existsSync(join(run, 'metrics.jsonl'))) assert.equal((await mpirun([{ np: 2, args: parallelRunArgs(data, run) }])).code, 0);
  const vocab = String((JSON.parse(readFileSync(join(run, 'model.json'), 'utf8')) as { vocabSize: number }).vocabSize);
  const entry = fileURLToPath(new URL('../src/cli/entry.ts', import.meta.url));
  const info = (mode: string): number => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', entry, 'info', '--model', 'llama_9m', '--mode', mode, '--rank', '4', '--vocab-size', vocab, '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { allreduce_bytes_per_update: number }).allreduce_bytes_per_update;
  };
  const train = metrics(run).filter((m) => m.type === 'train');
  const full = info('full'), relora = info('relora');
  assert.ok(relora < full / 2, `relora ${relora} vs full ${full}`);
  for (const m of train) {
    assert.equal(m.allreduce_bytes, m.phase === 'full' ? full : relora, `update ${m.step} (${m.phase})`);
    assert.ok(typeof m.comm_s === 'number' && m.comm_s >= 0);
  }
});

test('a batch that does not split over the processes is refused before any work', { skip }, async () => {
  const out = join(dir, 'indivisible');
  const r = await mpirun([{ np: 4, args: parallelRunArgs(data, out) }], { timeoutMs: 60_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.output, /batch_size 6 cannot be split evenly over the 4 processes/);
  assert.ok(!existsSync(out), 'no run folder was made');
});

test('ranks started with different configurations are refused at start, naming what differs', { skip }, async () => {
  const out = join(dir, 'mismatch');
  const r = await mpirun([{ np: 1, args: parallelRunArgs(data, out) }, { np: 1, args: parallelRunArgs(data, out, ['--seed', '7']) }], { timeoutMs: 60_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.output, /not started alike: the configuration of rank 1 differs from rank 0's/);
  assert.ok(!existsSync(join(out, 'metrics.jsonl')), 'nothing was trained');
});
