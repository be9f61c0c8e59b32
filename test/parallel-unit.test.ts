/**
 * The data-parallel pieces that need no MPI: reading the launcher's environment, sharing batches
 * and evaluation sequences between ranks, bucketed gradient averaging and the start-up hash check
 * (against a stand-in communicator), and an addon that does not need libmpi to load.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SequenceSampler } from '../src/data/sampler.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { SingleProcess, shareOf, type Communicator, type PendingReduction } from '../src/parallel/communicator.ts';
import { requireSameOnEveryRank } from '../src/parallel/consistency.ts';
import { GradientAverager } from '../src/parallel/gradients.ts';
import { defaultThreads, detectLaunch } from '../src/parallel/launch.ts';
import { resolveConfig } from '../src/train/config.ts';
import { nextRankMicroBatches, rankMicroBatch } from '../src/train/data-parallel.ts';
import { parameter } from '../src/engine/tensor.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { partitionParameters } from '../src/optim/partition.ts';
import { applyDropout, dropoutBackwardAdd } from '../src/engine/ops/dropout.ts';
import { parseResetKind } from '../src/relora/prune.ts';
import { resetLoraMoments } from '../src/relora/restart.ts';

/** Rank `rank` of a job of `size` whose other ranks all hold `peer(x)` where this one holds x. */
class StandIn extends SingleProcess implements Communicator {
  override readonly size: number;
  override readonly rank: number;
  reductions = 0;
  constructor(size: number, rank = 0, private readonly peer: (x: Float32Array) => Float32Array = (x) => x, private readonly gathered?: (mine: Uint8Array, r: number) => Uint8Array) {
    super();
    this.size = size;
    this.rank = rank;
  }
  override allReduceSum(x: Float32Array): void {
    this.reductions++;
    const p = this.peer(x);
    for (let i = 0; i < x.length; i++) x[i] += (this.size - 1) * p[i];
  }
  override startAllReduceSum(x: Float32Array): PendingReduction {
    this.allReduceSum(x);
    return { wait() {} };
  }
  override allReduceF64(x: Float64Array, _op: 'sum' | 'max'): void {
    for (let i = 0; i < x.length; i++) x[i] *= this.size;
  }
  override allGatherBytes(mine: Uint8Array): Uint8Array[] {
    return Array.from({ length: this.size }, (_, r) => this.gathered?.(mine, r) ?? mine);
  }
}

test('the launcher is read from the environment: Open MPI, PMIx (srun), or none', () => {
  assert.equal(detectLaunch({}), null);
  assert.deepEqual(detectLaunch({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '2' }), { size: 4, localSize: 2 });
  assert.deepEqual(detectLaunch({ PMIX_RANK: '0', SLURM_NTASKS: '8', SLURM_STEP_TASKS_PER_NODE: '4(x2)' }), { size: 8, localSize: 4 });
  assert.equal(defaultThreads(new StandIn(4), 16), 16, 'one rank on this machine gets every core');
  const two = Object.assign(new StandIn(4), { localSize: 2 });
  assert.equal(defaultThreads(two, 16), 8);
  assert.equal(defaultThreads(Object.assign(new StandIn(4), { localSize: 32 }), 16), 1);
});

test('evaluation sequences are shared out contiguously, every one exactly once', () => {
  for (const [total, size] of [[6, 2], [7, 3], [2, 3], [0, 2]]) {
    const parts = Array.from({ length: size }, (_, r) => shareOf(total, r, size));
    assert.deepEqual(parts.flatMap((p) => Array.from({ length: p.count }, (_, i) => p.start + i)), Array.from({ length: total }, (_, i) => i));
  }
});

test('the ranks together draw the same sequences, in the same order, as one process', () => {
  const cfg = resolveConfig({ micro_batch: 4, batch_size: 12 });
  for (const size of [1, 2, 3, 4, 6]) {
    const all: number[][] = [];
    for (let rank = 0; rank < size; rank++) {
      const sampler = new SequenceSampler({ numSequences: 50, seed: 3 });
      const micro = nextRankMicroBatches(cfg, new StandIn(size, rank), sampler, (ix) => Tensor.from(Float32Array.from(ix)));
      assert.ok(micro.every((t) => t.size <= cfg.micro_batch && t.size === rankMicroBatch(cfg, new StandIn(size, rank))));
      all.push(micro.flatMap((t) => Array.from(t.data)));
    }
    assert.deepEqual(all.flat(), new SequenceSampler({ numSequences: 50, seed: 3 }).nextBatch(12), `${size} ranks`);
  }
});

test('gradients are averaged in buckets (small ones packed, large ones alone) and the bytes counted', () => {
  const sizes = [3, 5, 2, 40, 7, 1];
  const params = sizes.map((n, i) => {
    const p = Tensor.zeros([n]);
    p.grad = Tensor.from(Float32Array.from({ length: n }, (_, j) => i * 100 + j + 0.5));
    return p;
  });
  const before = params.map((p) => Float32Array.from(p.grad!.data.subarray(0, p.size)));
  // The other rank's gradients are twice ours: the mean is 1.5 times ours.
  const comm = new StandIn(2, 0, (x) => x.map((v) => 2 * v));
  const avg = new GradientAverager(comm, 10);
  const loss = avg.average(params, 3);
  assert.equal(loss, 3);
  params.forEach((p, i) => assert.deepEqual(Array.from(p.grad!.data.subarray(0, p.size)), Array.from(before[i]).map((v) => 1.5 * v), `parameter ${i}`));
  // 40 alone; [3, 5, 2], [7, 1] packed in buckets of at most 10.
  assert.equal(comm.reductions, 3);
  assert.equal(avg.last.bytes, 58 * 4);
  // Alone, nothing is communicated or changed.
  const alone = new GradientAverager(new SingleProcess());
  assert.equal(alone.average(params, 2), 2);
  assert.equal(alone.last.bytes, 0);
});

test('a sharded optimizer deals whole tensors out, largest first to the least-loaded rank: each tensor once, loads balanced', () => {
  const sizes = [10, 500, 40, 500, 7, 300, 40, 1];
  assert.deepEqual(partitionParameters(sizes, 1), sizes.map(() => 0));
  // 500 → 0, 500 → 1, 300 → 0 (a tie goes to the lower rank), then 40, 40, 10, 7, 1 → 1 (598 against 800).
  assert.deepEqual(partitionParameters(sizes, 2), [1, 0, 1, 1, 1, 0, 1, 1]);
  for (const n of [2, 3, 4]) {
    const owners = partitionParameters(sizes, n);
    const load = Array.from({ length: n }, (_, r) => sizes.reduce((a, s, i) => a + (owners[i] === r ? s : 0), 0));
    assert.ok(Math.max(...load) <= sizes.reduce((a, b) => a + b) / n + Math.max(...sizes), `${n} ranks: ${load}`);
  }
  assert.throws(() => partitionParameters(sizes, 0), /processes must be a positive integer/);
});

/** Named trainable tensors of a LoRA-wrapped model's shapes, with the same values on every call. */
function loraParams(): [string, Tensor][] {
  const shapes: [string, number[]][] = [['embed.weight', [30, 8]], ['l0.q.lora_A.weight', [4, 8]], ['l0.q.lora_B.weight', [8, 4]], ['l0.norm.weight', [8]], ['l1.q.lora_A.weight', [4, 8]], ['l1.q.lora_B.weight', [8, 4]], ['head.weight', [30, 8]]];
  return shapes.map(([name, shape]) => [name, parameter(shape, true)]);
}

function fillMoments(opt: AdamW): void {
  for (const [name, s] of opt.state) {
    const base = name.length;
    s.m.data.forEach((_, i) => (s.m.data[i] = Math.sin(base + i)));
    s.v.data.forEach((_, i) => (s.v.data[i] = Math.cos(base + i) ** 2));
  }
}

test("the ranks of a sharded optimizer keep each tensor's moments once, and their ReLoRA reset equals one process's (same masks, same stream)", () => {
  for (const reset of ['reference', 'shared', 'magnitude:0.5', 'zero']) {
    const kind = parseResetKind(reset);
    const alone = new AdamW(loraParams(), { lr: 1e-3 });
    fillMoments(alone);
    const rngAlone = new RandomStream(5);
    resetLoraMoments(alone, kind, rngAlone);
    const seen = new Map<string, number>();
    for (let rank = 0; rank < 3; rank++) {
      const shard = new AdamW(loraParams(), { lr: 1e-3, shard: { rank, size: 3 } });
      assert.ok(shard.state.size > 0 && shard.state.size < alone.state.size, `rank ${rank} keeps ${shard.state.size} of ${alone.state.size}`);
      fillMoments(shard);
      const rng = new RandomStream(5);
      resetLoraMoments(shard, kind, rng);
      assert.deepEqual(rng.state(), rngAlone.state(), `${reset}: rank ${rank}'s stream is where one process's is`);
      for (const [name, s] of shard.state) {
        seen.set(name, (seen.get(name) ?? 0) + 1);
        assert.deepEqual(s.m.data, alone.state.get(name)!.m.data, `${reset}: m of ${name} on rank ${rank}`);
        assert.deepEqual(s.v.data, alone.state.get(name)!.v.data, `${reset}: v of ${name} on rank ${rank}`);
      }
    }
    assert.deepEqual([...seen.keys()].sort(), [...alone.state.keys()].sort());
    assert.ok([...seen.values()].every((n) => n === 1));
  }
});

test("a rank's share of a micro-batch takes, with its offset, the dropout mask one process applies to those sequences", () => {
  const rows = 5, row = 7, n = rows * row;
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) + 2), g = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
  const whole = new Float32Array(n), wholeDx = Float32Array.from({ length: n }, () => 0.25);
  const d = { p: 0.3, key: 12345 };
  applyDropout(x, whole, n, d);
  dropoutBackwardAdd(g, wholeDx, n, d);
  assert.ok(whole.some((v) => v === 0) && whole.some((v) => v !== 0), 'some kept, some dropped');
  for (const first of [1, 3]) {
    const part = x.subarray(first * row), m = part.length;
    const out = new Float32Array(m), dx = Float32Array.from({ length: m }, () => 0.25);
    applyDropout(part, out, m, { ...d, offset: first * row });
    dropoutBackwardAdd(g.subarray(first * row), dx, m, { ...d, offset: first * row });
    assert.deepEqual(out, whole.subarray(first * row), `forward from row ${first}`);
    assert.deepEqual(dx, wholeDx.subarray(first * row), `backward from row ${first}`);
    // Without the offset the mask is another one.
    const unplaced = new Float32Array(m);
    applyDropout(part, unplaced, m, d);
    assert.notDeepEqual(unplaced, whole.subarray(first * row));
  }
});

test('ranks given different things are named at start', () => {
  const differ = (mine: Uint8Array, r: number): Uint8Array => (r === 2 ? mine.map((b, i) => (i >= 32 ? b ^ 1 : b)) : mine);
  assert.throws(() => requireSameOnEveryRank(new StandIn(3, 0, undefined, differ), { 'the configuration': 'a', 'the data': 'b' }),
    /the 3 processes of this job were not started alike: the data of rank 2 differs from rank 0's/);
  assert.doesNotThrow(() => requireSameOnEveryRank(new StandIn(3), { 'the configuration': 'a' }));
});

test('the native addon does not link MPI: it loads without OpenMPI installed', { skip: spawnSync('readelf', ['--version']).error ? 'readelf is not installed' : false }, (t) => {
  const addon = fileURLToPath(new URL('../native/build/Release/relora_native.node', import.meta.url));
  if (!existsSync(addon)) return t.skip('the native addon is not built');
  const needed = spawnSync('readelf', ['-d', addon], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes('(NEEDED)'));
  assert.ok(needed.length > 0, 'readelf lists the libraries the addon needs');
  assert.deepEqual(needed.filter((l) => /mpi/i.test(l)), []);
});

test('the predicted ring all-reduce time: 2(N−1)/N · bytes / bandwidth, full against relora for the named configs', async () => {
  const { predictCommunication, ringAllReduceSeconds } = await import('../src/bench/ddp.ts');
  // 8 nodes send 2·7/8 of 1 GB; at 10 Gbit/s (1.25 GB/s) that is 1.4 s.
  assert.ok(Math.abs(ringAllReduceSeconds(1e9, 8, 10) - 1.4) < 1e-12);
  assert.equal(ringAllReduceSeconds(1e9, 1, 10), 0);
  const d = resolveConfig({});
  const rows = predictCommunication({ rank: 128, alpha: d.alpha, dropout: 0, targetModules: d.target_modules }, [8, 64], [10, 100, 400]);
  assert.equal(rows.at(-1)!.model, 'llama_1b');
  const big = rows.at(-1)!;
  assert.ok(big.reloraBytes < big.fullBytes / 4, `llama_1b: relora ${big.reloraBytes} vs full ${big.fullBytes} bytes`);
  assert.equal(big.full[1][0], ringAllReduceSeconds(big.fullBytes, 64, 10));
});
