import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RandomStream } from '../src/engine/rng.ts';
import { absQuantile, formatResetKind, parseResetKind, pruneInPlace, resetMomentsInPlace, selectKth } from '../src/relora/prune.ts';

/** Independent reference: full sort, then numpy's 'linear' interpolation at p·(n − 1). */
function referenceQuantile(values: ArrayLike<number>, p: number): number {
  const s = Array.from(values, Math.abs).sort((a, b) => a - b);
  const pos = p * (s.length - 1);
  const k = Math.floor(pos);
  const g = pos - k;
  return k + 1 < s.length ? s[k] + (s[k + 1] - s[k]) * g : s[k];
}

function randomArray(n: number, seed: number, distinctLevels?: number): Float32Array {
  const x = new Float32Array(n);
  new RandomStream(seed).normal(x);
  // Quantising creates many ties, the hard case for selection.
  if (distinctLevels !== undefined) for (let i = 0; i < n; i++) x[i] = Math.round(x[i] * distinctLevels) / distinctLevels + 0; // + 0 turns -0 into 0
  return x;
}

test('parseResetKind accepts reset, random:p and magnitude:p', () => {
  assert.deepEqual(parseResetKind('reset'), { method: 'random', ratio: 0.999 });
  assert.deepEqual(parseResetKind('reference'), { method: 'random', ratio: 0.999 });
  assert.deepEqual(parseResetKind('shared'), { method: 'random_shared', ratio: 0.999 });
  assert.deepEqual(parseResetKind('shared:0.9'), { method: 'random_shared', ratio: 0.9 });
  assert.deepEqual(parseResetKind(' zero '), { method: 'zero' });
  for (const s of ['reference', 'shared', 'zero', 'shared:0.5', 'random:0.25', 'magnitude:0.9']) {
    assert.deepEqual(parseResetKind(formatResetKind(parseResetKind(s))), parseResetKind(s), s);
  }
  assert.deepEqual(parseResetKind('random:0.5'), { method: 'random', ratio: 0.5 });
  assert.deepEqual(parseResetKind('magnitude:0.9'), { method: 'magnitude', ratio: 0.9 });
  assert.deepEqual(parseResetKind('magnitude:0'), { method: 'magnitude', ratio: 0 });
  assert.deepEqual(parseResetKind('random:1e-1'), { method: 'random', ratio: 0.1 });
  assert.deepEqual(parseResetKind('random:.25'), { method: 'random', ratio: 0.25 });
});

test('parseResetKind rejects bad kinds and ratios outside [0, 1), naming the value', () => {
  for (const bad of ['random:1', 'magnitude:1.0', 'random:-0.1', 'random:2']) {
    assert.throws(() => parseResetKind(bad), new RegExp(`must be a number in \\[0, 1\\), got '${bad.split(':')[1]}'`), bad);
  }
  for (const bad of ['random:', 'magnitude:abc', 'random:0x1', 'random: ', 'random:NaN', 'random:Infinity']) {
    assert.throws(() => parseResetKind(bad), /must be a number in \[0, 1\)/, bad);
  }
  for (const bad of ['zeros', 'random', 'shared:1', 'magnitude=0.5', '', 'Reset', 'toString', '__proto__', 'zero:0.5']) {
    assert.throws(() => parseResetKind(bad), /expected 'reference', 'shared', 'zero', 'random:p', 'shared:p' or 'magnitude:p'|must be a number in \[0, 1\)/, bad);
  }
});

test('magnitude pruning, hand-computed cases', () => {
  const rng = new RandomStream(1);
  const cases: [number[], number, number[]][] = [
    // |x| sorted 0.1 0.2 0.3 0.4 0.5; p = 0.5 -> position 2 -> t = 0.3 (ties with t are zeroed)
    [[0.5, -0.1, 0.3, -0.4, 0.2], 0.5, [0.5, 0, 0, -0.4, 0]],
    // position 2.4 -> t = 0.34
    [[0.5, -0.1, 0.3, -0.4, 0.2], 0.6, [0.5, 0, 0, -0.4, 0]],
    // position 3 -> t = 0.4
    [[0.5, -0.1, 0.3, -0.4, 0.2], 0.75, [0.5, 0, 0, 0, 0]],
    // position 1.5 -> t = 2.5
    [[1, -2, 3, -4], 0.5, [0, 0, 3, -4]],
    // p = 0 -> t = min |x|: only the smallest entries go
    [[3, -1, 2, 1], 0, [3, 0, 2, 0]],
    // ties: |x| sorted 0 0 0 0 1 1 1 2; position 3.5 -> t = 0.5
    [[0, 1, 0, -1, 2, 0, 1, 0], 0.5, [0, 1, 0, -1, 2, 0, 1, 0]],
    // position 4.2 -> t = 1: every ±1 goes
    [[0, 1, 0, -1, 2, 0, 1, 0], 0.6, [0, 0, 0, 0, 2, 0, 0, 0]],
    // all equal: everything is <= t
    [[-7, 7, 7], 0.1, [0, 0, 0]],
    [[4], 0.9, [0]],
  ];
  for (const [input, p, want] of cases) {
    const x = Float32Array.from(input);
    const zeroed = pruneInPlace(x, { method: 'magnitude', ratio: p }, rng);
    assert.deepEqual(x, Float32Array.from(want), `p=${p} on ${JSON.stringify(input)}`);
    assert.equal(zeroed, want.filter((v) => v === 0).length);
  }
  assert.equal(rng.calls, 0, 'magnitude pruning draws no random numbers');
  assert.equal(pruneInPlace(new Float32Array(0), { method: 'magnitude', ratio: 0.5 }, rng), 0);
});

test('absQuantile equals a full-sort reference, including heavy ties', () => {
  for (const [n, levels] of [[1, undefined], [2, undefined], [17, undefined], [1000, undefined], [5001, 4], [20000, 1], [3000, 1000]] as const) {
    for (const p of [0, 0.001, 0.25, 0.5, 0.9, 0.999, 1]) {
      const x = randomArray(n, n * 7 + 1, levels);
      const before = Float32Array.from(x);
      assert.equal(absQuantile(x, p), referenceQuantile(x, p), `n=${n} levels=${levels} p=${p}`);
      assert.deepEqual(x, before, 'absQuantile does not modify its input');
    }
  }
  assert.throws(() => absQuantile(Float32Array.from([1, NaN]), 0.5), /NaN at index 1/);
});

test('selectKth places the k-th order statistic and partitions around it', () => {
  const x = randomArray(4097, 3, 8);
  const sorted = Float32Array.from(x).sort();
  for (const k of [0, 1, 100, 2048, 4095, 4096]) {
    const a = Float32Array.from(x);
    assert.equal(selectKth(a, k), sorted[k], `k=${k}`);
    for (let i = 0; i < k; i++) assert.ok(a[i] <= a[k]);
    for (let i = k + 1; i < a.length; i++) assert.ok(a[i] >= a[k]);
  }
});

test('magnitude pruning keeps exactly the entries above the quantile, unchanged', () => {
  for (const [p, levels] of [[0.5, undefined], [0.9, 16], [0.99, undefined], [0.3, 2]] as const) {
    const x = randomArray(10000, 11, levels);
    const original = Float32Array.from(x);
    const t = referenceQuantile(original, p);
    pruneInPlace(x, { method: 'magnitude', ratio: p }, new RandomStream(0));
    for (let i = 0; i < x.length; i++) {
      assert.equal(x[i], Math.abs(original[i]) > t ? original[i] : 0, `p=${p} i=${i}`);
    }
  }
});

test('random pruning keeps entry i iff the i-th uniform of one rng draw exceeds p', () => {
  const x = randomArray(5000, 5);
  const original = Float32Array.from(x);
  const rng = new RandomStream(42, 7);
  const u = new Float32Array(x.length);
  new RandomStream(42, 7).uniform(u);
  const zeroed = pruneInPlace(x, { method: 'random', ratio: 0.3 }, rng);
  let expectedZeroed = 0;
  for (let i = 0; i < x.length; i++) {
    const keep = u[i] > 0.3;
    if (!keep) expectedZeroed++;
    assert.equal(x[i], keep ? original[i] : 0);
  }
  assert.equal(zeroed, expectedZeroed);
  assert.equal(rng.calls, 8, 'one draw per tensor');
});

test('random pruning keeps about 1 − p of the entries, with independent masks per call', () => {
  const n = 200000;
  const rng = new RandomStream(9);
  for (const p of [0, 0.5, 0.9, 0.999]) {
    const x = new Float32Array(n).fill(1);
    pruneInPlace(x, { method: 'random', ratio: p }, rng);
    const kept = x.reduce((acc, v) => acc + v, 0);
    const mean = n * (1 - p);
    const sd = Math.sqrt(n * p * (1 - p));
    assert.ok(Math.abs(kept - mean) <= 5 * sd + 1e-9, `p=${p}: kept ${kept}, expected ${mean} ± ${5 * sd}`);
  }
  // m and v are pruned by consecutive calls: their masks must differ.
  const m = new Float32Array(n).fill(1);
  const v = new Float32Array(n).fill(1);
  pruneInPlace(m, { method: 'random', ratio: 0.5 }, rng);
  pruneInPlace(v, { method: 'random', ratio: 0.5 }, rng);
  let same = 0;
  for (let i = 0; i < n; i++) if (m[i] === v[i]) same++;
  assert.ok(Math.abs(same - n / 2) < 5 * Math.sqrt(n / 4), `masks agree on ${same} of ${n}`);
});

/** Moments as after some training: every entry nonzero, m of either sign, v > 0. */
function trainedMoments(n: number, seed: number): { m: Float32Array; v: Float32Array } {
  const m = randomArray(n, seed);
  const v = randomArray(n, seed + 1).map((x) => x * x + 1e-3);
  return { m, v };
}

test('resetMomentsInPlace, reference (random): m and v get masks of their own, so some entries keep m but lose v', () => {
  const n = 100000;
  const { m, v } = trainedMoments(n, 3);
  const rng = new RandomStream(11);
  resetMomentsInPlace(m, v, parseResetKind('reference'), rng);
  assert.equal(rng.calls, 2, 'one draw for m, one for v (as the reference)');
  let mOnly = 0;
  for (let i = 0; i < n; i++) if (m[i] !== 0 && v[i] === 0) mOnly++;
  // About n · 0.001 · 0.999 entries: each of them makes the next Adam step lr·m̂/ε.
  assert.ok(mOnly > 50 && mOnly < 160, `entries with m ≠ 0 and v = 0: ${mOnly}`);
});

test('resetMomentsInPlace, shared: one mask for both moments, entry i kept iff the i-th uniform exceeds p', () => {
  const n = 100000;
  const { m, v } = trainedMoments(n, 5);
  const [m0, v0] = [Float32Array.from(m), Float32Array.from(v)];
  const u = new Float32Array(n);
  new RandomStream(13).uniform(u);
  const rng = new RandomStream(13);
  const zeroed = resetMomentsInPlace(m, v, parseResetKind('shared:0.99'), rng);
  assert.equal(rng.calls, 1, 'one draw for both');
  let expected = 0;
  for (let i = 0; i < n; i++) {
    const keep = u[i] > 0.99;
    if (!keep) expected += 2;
    assert.equal(m[i], keep ? m0[i] : 0);
    assert.equal(v[i], keep ? v0[i] : 0);
  }
  assert.equal(zeroed, expected);
  assert.ok(expected / 2 > n * 0.98 && expected / 2 < n, `kept ${n - expected / 2} of ${n}`);
});

test('resetMomentsInPlace, zero: both moments zeroed, no random draw; magnitude prunes each moment by its own quantile', () => {
  const { m, v } = trainedMoments(1000, 7);
  const rng = new RandomStream(17);
  assert.equal(resetMomentsInPlace(m, v, parseResetKind('zero'), rng), 2000);
  assert.ok(m.every((x) => x === 0) && v.every((x) => x === 0));
  assert.equal(rng.calls, 0);
  const t = trainedMoments(1000, 9);
  const [tm, tv] = [Float32Array.from(t.m), Float32Array.from(t.v)];
  resetMomentsInPlace(t.m, t.v, parseResetKind('magnitude:0.5'), rng);
  pruneInPlace(tm, { method: 'magnitude', ratio: 0.5 }, rng);
  pruneInPlace(tv, { method: 'magnitude', ratio: 0.5 }, rng);
  assert.deepEqual(t.m, tm);
  assert.deepEqual(t.v, tv);
  assert.throws(() => resetMomentsInPlace(new Float32Array(2), new Float32Array(3), parseResetKind('zero'), rng), /m has 2 entries, v has 3/);
});

test('pruneInPlace rejects a ratio outside [0, 1]; ratio 1 (a full reset, not offered to users) zeroes everything', () => {
  assert.throws(() => pruneInPlace(new Float32Array(3), { method: 'random', ratio: 1.5 }, new RandomStream(0)), /ratio must be in \[0, 1\], got 1.5/);
  assert.throws(() => pruneInPlace(new Float32Array(3), { method: 'magnitude', ratio: -0.1 }, new RandomStream(0)), /got -0.1/);
  const x = Float32Array.from([0.5, -2, 3, 1e-9]);
  assert.equal(pruneInPlace(x, { method: 'magnitude', ratio: 1 }, new RandomStream(0)), 4);
  assert.ok(x.every((v) => v === 0));
});

test('magnitude pruning of a 5M-element tensor is fast', () => {
  const x = randomArray(5_000_000, 123);
  const start = performance.now();
  pruneInPlace(x, { method: 'magnitude', ratio: 0.9 }, new RandomStream(0));
  const ms = performance.now() - start;
  let kept = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== 0) kept++;
  // Continuous values: exactly the entries above position 0.9·(n − 1) survive.
  assert.equal(kept, 5_000_000 - Math.floor(0.9 * (5_000_000 - 1)) - 1);
  assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  console.log(`magnitude prune of 5M entries: ${ms.toFixed(0)} ms`);
});
