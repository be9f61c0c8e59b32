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
