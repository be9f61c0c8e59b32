import { test } from 'node:test';
import assert from 'node:assert/strict';
import { epochPermutation, SequenceSampler } from '../src/data/sampler.ts';

test('each epoch is a permutation that depends on seed and epoch only', () => {
  const n = 1000;
  const p = epochPermutation(n, 7, 0);
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  assert.deepEqual(epochPermutation(n, 7, 0), p);
  assert.notDeepEqual(epochPermutation(n, 7, 1), p);
  assert.notDeepEqual(epochPermutation(n, 8, 0), p);
  // Shuffled, not near the identity.
  const fixed = p.filter((v, i) => v === i).length;
  assert.ok(fixed < 10, `${fixed} fixed points`);
  assert.deepEqual(Array.from(epochPermutation(1, 3, 5)), [0]);
});

test('positions are roughly uniform over many seeds', () => {
  // Where element 0 lands, over 4000 seeds, in 4 bins of a 8-element permutation.
  const bins = [0, 0, 0, 0];
  for (let seed = 0; seed < 4000; seed++) bins[Math.floor(epochPermutation(8, seed, 0).indexOf(0) / 2)]!++;
  for (const b of bins) assert.ok(b > 850 && b < 1150, `bins ${bins}`);
});

test('batches cover every sequence once per epoch and cross epochs', () => {
  const s = new SequenceSampler({ numSequences: 10, seed: 42 });
  const epoch0 = [...s.nextBatch(4), ...s.nextBatch(4)];
  const straddle = s.nextBatch(4);
  assert.deepEqual(s.state(), { epoch: 1, position: 2 });
  const all0 = [...epoch0, ...straddle.slice(0, 2)];
  assert.deepEqual([...all0].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(all0, Array.from(epochPermutation(10, 42, 0)));
  assert.deepEqual(straddle.slice(2), Array.from(epochPermutation(10, 42, 1)).slice(0, 2));
});

test('resume from a saved state continues exactly', () => {
  const reference = new SequenceSampler({ numSequences: 37, seed: 2024 });
  const full: number[] = [];
  for (let i = 0; i < 30; i++) full.push(...reference.nextBatch(5));

  const first = new SequenceSampler({ numSequences: 37, seed: 2024 });
  const got: number[] = [];
  for (let i = 0; i < 13; i++) got.push(...first.nextBatch(5));
  const saved = JSON.parse(JSON.stringify(first.state())) as { epoch: number; position: number };
  assert.deepEqual(saved, { epoch: 1, position: 28 });
  const resumed = new SequenceSampler({ numSequences: 37, seed: 2024, state: saved });
  for (let i = 13; i < 30; i++) got.push(...resumed.nextBatch(5));
  assert.deepEqual(got, full);
});

test('unshuffled order and argument checks', () => {
  const s = new SequenceSampler({ numSequences: 3, seed: 0, shuffle: false });
  assert.deepEqual(s.nextBatch(7), [0, 1, 2, 0, 1, 2, 0]);
  assert.throws(() => new SequenceSampler({ numSequences: 0, seed: 1 }), /numSequences must be a positive integer, got 0/);
  assert.throws(() => new SequenceSampler({ numSequences: 5, seed: -1 }), /seed must be an integer in \[0, 2\^32\), got -1/);
  assert.throws(() => new SequenceSampler({ numSequences: 5, seed: 1, state: { epoch: 0, position: 6 } }), /position must be an integer in \[0, 5\], got 6/);
  assert.throws(() => s.nextBatch(0), /microBatch must be a positive integer, got 0/);
});

/** A count that grows by hand, as a token cache being written does. */
function growingCount(final: number) {
  let available = 0;
  let done = false;
  const waiting: Array<{ n: number; resolve: () => void }> = [];
  const settle = () => {
    for (const w of waiting.splice(0)) {
      if (done || w.n <= available) w.resolve();
      else waiting.push(w);
    }
  };
  return {
    count: {
      available: () => available,
      total: () => (done ? final : null),
      waitFor: (n: number) => new Promise<void>((resolve) => { waiting.push({ n, resolve }); settle(); }),
    },
    grow(to: number) { available = Math.min(to, final); settle(); },
    finish() { available = final; done = true; settle(); },
  };
}

test('first epoch in shards: the same order whether the data grows or is complete, one shard = the old order', () => {
  // 23 sequences in shards of 5: four full shards and one of 3, each permuted on its own.
  const complete = new SequenceSampler({ numSequences: 23, seed: 9, shardSequences: 5 });
  const order = complete.nextBatch(23);
  for (let k = 0; k < 5; k++) {
    const shard = order.slice(5 * k, 5 * k + 5);
    assert.deepEqual([...shard].sort((a, b) => a - b), Array.from({ length: Math.min(5, 23 - 5 * k) }, (_, i) => 5 * k + i), `shard ${k}`);
  }
  assert.notDeepEqual(order, Array.from({ length: 23 }, (_, i) => i));
  // Later epochs: one permutation of everything, as before shards existed.
  assert.deepEqual(complete.nextBatch(23), Array.from(epochPermutation(23, 9, 1)));
  // A corpus of one shard keeps the order of a sampler without shards, every epoch.
  const one = new SequenceSampler({ numSequences: 23, seed: 9, shardSequences: 23 });
  const plain = new SequenceSampler({ numSequences: 23, seed: 9 });
  assert.deepEqual(one.nextBatch(60), plain.nextBatch(60));
  assert.deepEqual(plain.nextBatch(1), [epochPermutation(23, 9, 2)[14]]); // 60 = 2 epochs + 14
});

test('a growing count: next needs a complete shard, ready waits for it, the order equals the complete one', async () => {
  const reference = new SequenceSampler({ numSequences: 23, seed: 9, shardSequences: 5 }).nextBatch(50);
  const g = growingCount(23);
  const s = new SequenceSampler({ numSequences: g.count, seed: 9, shardSequences: 5 });
  g.grow(4);
  assert.throws(() => s.next(), /sequence 0 of epoch 0 is not tokenised yet/);
  assert.equal(s.sequencesNeeded(3), 5);
  let ready = false;
  const waiting = s.ready(3).then(() => { ready = true; });
  await new Promise((r) => setImmediate(r));
  assert.equal(ready, false, 'ready before shard 0 is complete');
  g.grow(7);
  await waiting;
  const got = s.nextBatch(3);
  // Across a shard boundary: the next batch needs shard 1 complete.
  assert.equal(s.sequencesNeeded(4), 10);
  g.grow(10);
  await s.ready(4);
  got.push(...s.nextBatch(4));
  // The last shard's size is known only at the end; the next epoch needs the total.
  g.grow(22);
  assert.equal(s.sequencesNeeded(15), 25);
  const last = s.ready(15);
  g.finish();
  await last;
  assert.equal(s.sequencesNeeded(100), 0);
  got.push(...s.nextBatch(43));
  assert.deepEqual(got, reference);
});

test('resuming on a growing count continues exactly, and a position beyond the data is caught when the total is known', async () => {
  const reference = new SequenceSampler({ numSequences: 23, seed: 4, shardSequences: 5 }).nextBatch(40);
  const g = growingCount(23);
  g.grow(12);
  const first = new SequenceSampler({ numSequences: g.count, seed: 4, shardSequences: 5 });
  const got = first.nextBatch(8);
  const resumed = new SequenceSampler({ numSequences: g.count, seed: 4, shardSequences: 5, state: first.state() });
  g.finish();
  got.push(...resumed.nextBatch(32));
  assert.deepEqual(got, reference);

  const h = growingCount(23);
  const beyond = new SequenceSampler({ numSequences: h.count, seed: 4, shardSequences: 5, state: { epoch: 0, position: 30 } });
  h.finish();
  assert.throws(() => beyond.next(), /position 30 is beyond the 23 sequences/);
});
