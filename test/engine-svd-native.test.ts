/** The native backend's singular values (LAPACK dgesdd) agree with the TypeScript implementation. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { nativeSingularValues } from '../src/engine/backends/native.ts';
import { jsSingularValues, singularValues } from '../src/engine/linalg.ts';
import { RandomStream } from '../src/engine/rng.ts';

test('LAPACK singular values match the TypeScript ones, and the native backend uses them', () => {
  const lapack = nativeSingularValues();
  assert.ok(lapack, 'LAPACK (libopenblas) must be available to the native backend; CI installs libopenblas-dev');
  const rng = new RandomStream(3);
  for (const [m, n] of [[1, 1], [1, 7], [9, 1], [40, 60], [60, 40], [128, 352]]) {
    const a = new Float32Array(m * n);
    rng.normal(a, 0, 1);
    const ref = jsSingularValues(a, m, n);
    const got = lapack(a, m, n);
    assert.equal(got.length, Math.min(m, n));
    for (let i = 0; i < ref.length; i++) {
      assert.ok(Math.abs(got[i] - ref[i]) <= 1e-6 * ref[0], `${m}x${n} σ${i}: ${got[i]} vs ${ref[i]}`);
    }
    // Float64 input too (updateRank passes W − W0 in float64).
    const got64 = lapack(Float64Array.from(a), m, n);
    assert.deepEqual(got64, got);
  }
  // A rank-deficient matrix: exactly k non-negligible values.
  const u = new Float32Array(30 * 3), v = new Float32Array(3 * 20);
  rng.normal(u); rng.normal(v);
  const low = new Float64Array(30 * 20);
  for (let i = 0; i < 30; i++) for (let j = 0; j < 20; j++) for (let r = 0; r < 3; r++) low[i * 20 + j] += u[i * 3 + r] * v[r * 20 + j];
  const s = lapack(low, 30, 20);
  assert.equal(s.filter((x) => x > 1e-9 * s[0]).length, 3);
  assert.throws(() => lapack(new Float32Array([1, NaN]), 1, 2), /svdValues: entry \(0, 1\) is not finite/);
  assert.throws(() => lapack(new Float32Array(5), 2, 3), /svdValues: a has 5 elements, m\*n = 6/);

  setBackend('native');
  const a = new Float32Array(12 * 8);
  rng.uniform(a, -1, 1);
  assert.deepEqual(singularValues(a, 12, 8), lapack(a, 12, 8));
  setBackend('js');
  assert.deepEqual(singularValues(a, 12, 8), jsSingularValues(a, 12, 8));
});
