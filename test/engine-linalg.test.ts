import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  jsSingularValues, setSingularValuesImpl, singularValues, symmetricEigenvalues,
} from '../src/engine/linalg.ts';
import { RandomStream } from '../src/engine/rng.ts';

/** n×k matrix (row-major) with orthonormal columns: Gaussian columns, Gram–Schmidt applied twice. */
function orthonormalColumns(n: number, k: number, rng: RandomStream): Float64Array {
  const q = new Float64Array(n * k);
  rng.normal(q);
  for (let c = 0; c < k; c++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += q[i * k + c] * q[i * k + p];
        for (let i = 0; i < n; i++) q[i * k + c] -= dot * q[i * k + p];
      }
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += q[i * k + c] ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; i++) q[i * k + c] /= norm;
  }
  return q;
}

/** U·diag(s)·Vᵀ (m×n, float64) with random orthonormal U (m×k), V (n×k), k = s.length. */
function withSingularValues(m: number, n: number, s: number[], seed: number): Float64Array {
  const k = s.length;
  const rng = new RandomStream(seed);
  const u = orthonormalColumns(m, k, rng);
  const v = orthonormalColumns(n, k, rng);
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let x = 0;
      for (let c = 0; c < k; c++) x += u[i * k + c] * s[c] * v[j * k + c];
      a[i * n + j] = x;
    }
  }
  return a;
}

/** k values from 1 down to `smallest`, geometrically spaced, times `top`. */
function geometric(k: number, top: number, smallest: number): number[] {
  return Array.from({ length: k }, (_, i) => top * smallest ** (k === 1 ? 0 : i / (k - 1)));
}

function assertClose(got: ArrayLike<number>, want: number[], relTol: number, floorFrac: number, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  const top = want[0];
  for (let i = 0; i < want.length; i++) {
    if (want[i] >= floorFrac * top) {
      const rel = Math.abs(got[i] - want[i]) / want[i];
      assert.ok(rel <= relTol, `${label}: σ[${i}] = ${got[i]}, expected ${want[i]} (relative error ${rel.toExponential(2)})`);
    }
  }
}

test('symmetric eigenvalues of the [−1 2 −1] tridiagonal matrix match 2 − 2cos(kπ/(n+1))', () => {
  for (const n of [1, 2, 3, 7, 40]) {
    const g = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      g[i * n + i] = 2;
      if (i > 0) g[i * n + i - 1] = g[(i - 1) * n + i] = -1;
    }
    const ev = symmetricEigenvalues(g, n);
    for (let k = 1; k <= n; k++) {
      const want = 2 - 2 * Math.cos((k * Math.PI) / (n + 1));
      assert.ok(Math.abs(ev[k - 1] - want) < 1e-13, `n=${n}: λ${k} = ${ev[k - 1]}, expected ${want}`);
    }
  }
});

test('symmetric eigenvalues of Q·D·Qᵀ recover D: negative, repeated and zero eigenvalues', () => {
  const n = 30;
  const dvals = Array.from({ length: n }, (_, i) => (i < 5 ? 3 : i < 8 ? 0 : (i - 15) * 0.7));
  const q = orthonormalColumns(n, n, new RandomStream(11));
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let x = 0;
      for (let c = 0; c < n; c++) x += q[i * n + c] * dvals[c] * q[j * n + c];
      g[i * n + j] = x;
    }
  }
  const copy = Float64Array.from(g);
  const ev = symmetricEigenvalues(g, n);
  assert.deepEqual(g, copy, 'input must not be modified');
  const want = [...dvals].sort((a, b) => a - b);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(ev[i] - want[i]) < 1e-12, `λ${i} = ${ev[i]}, expected ${want[i]}`);
});

test('singular values of U·diag(s)·Vᵀ: relative error ≤ 1e-6 above 1e-3·σmax, wide, tall and square', () => {
  const cases: [number, number, number][] = [[40, 60, 40], [60, 40, 40], [100, 100, 100], [7, 200, 7], [150, 33, 33]];
  for (const [m, n, k] of cases) {
    const s = geometric(k, 2.5, 1e-4); // spans below the 1e-3 floor too
    const got = singularValues(withSingularValues(m, n, s, m * 1000 + n), m, n);
    assertClose(got, s, 1e-6, 1e-3, `${m}×${n}`);
    for (let i = 1; i < got.length; i++) assert.ok(got[i] <= got[i - 1], `${m}×${n}: not descending at ${i}`);
  }
});

test('scale does not matter: 1e30 and 1e-30 times a matrix give 1e30 and 1e-30 times its singular values', () => {
  const s = geometric(20, 1, 1e-3);
  const a = withSingularValues(20, 35, s, 5);
  for (const f of [1e30, 1e-30]) {
    const got = singularValues(a.map((x) => x * f), 20, 35);
    assertClose(got, s.map((x) => x * f), 1e-6, 1e-3, `scale ${f}`);
  }
});

test('float32 input: each σ is within ‖fl32(A) − A‖_F of the exact value (Weyl)', () => {
  const m = 64, n = 96;
  const s = geometric(m, 4, 1e-3);
  const a64 = withSingularValues(m, n, s, 9);
  const a32 = Float32Array.from(a64);
  let errF = 0;
  for (let i = 0; i < a64.length; i++) errF += (a32[i] - a64[i]) ** 2;
  errF = Math.sqrt(errF);
  const got = singularValues(a32, m, n);
  for (let i = 0; i < m; i++) {
    assert.ok(Math.abs(got[i] - s[i]) <= errF + 1e-12, `σ[${i}] = ${got[i]}, expected ${s[i]} ± ${errF}`);
  }
});

test('a matrix of exact rank k has k singular values above 1e-6·σmax, the rest ≈ 0', () => {
  for (const [m, n, k] of [[50, 80, 12], [80, 50, 1], [64, 64, 63]]) {
    const s = geometric(k, 1, 0.01);
    const got = singularValues(withSingularValues(m, n, s, k), m, n);
    assert.equal(got.length, Math.min(m, n));
    assertClose(got.subarray(0, k), s, 1e-6, 0, `${m}×${n} rank ${k}`);
    for (let i = k; i < got.length; i++) assert.ok(got[i] < 1e-6, `${m}×${n} rank ${k}: σ[${i}] = ${got[i]}`);
  }
});

test('a single row or column has one singular value, its Euclidean norm; a zero matrix has zeros', () => {
  const v = Float32Array.from({ length: 37 }, (_, i) => Math.sin(i + 1) * (i % 3));
  const norm = Math.sqrt(v.reduce((acc, x) => acc + x * x, 0));
  for (const [m, n] of [[1, 37], [37, 1]]) {
    const got = singularValues(v, m, n);
    assert.equal(got.length, 1);
    assert.ok(Math.abs(got[0] - norm) < 1e-12 * norm, `${m}×${n}: ${got[0]} vs ${norm}`);
  }
  assert.deepEqual(singularValues(new Float32Array(1), 1, 1), new Float64Array([0]));
  assert.deepEqual(singularValues(Float32Array.of(-3), 1, 1), new Float64Array([3]));
  assert.deepEqual(singularValues(new Float32Array(12 * 5), 12, 5), new Float64Array(5));
});

test('bad shapes and non-finite entries are rejected with the value', () => {
  assert.throws(() => singularValues(new Float32Array(6), 0, 6), /rows m must be a positive integer, got 0/);
  assert.throws(() => singularValues(new Float32Array(6), 2, 2.5), /columns n must be a positive integer, got 2.5/);
  assert.throws(() => singularValues(new Float32Array(6), 2, 4), /has 6 entries; expected m·n = 2·4 = 8/);
  assert.throws(() => singularValues(Float32Array.of(1, 2, NaN, 4), 2, 2), /entry 2 \(row 1, column 0\) is NaN/);
  assert.throws(() => symmetricEigenvalues(new Float64Array(5), 2), /expected n² = 4/);
});

test('setSingularValuesImpl routes calls to the plugged-in function and null restores TypeScript', () => {
  const a = Float32Array.of(3, 0, 0, 4);
  const seen: [number, number][] = [];
  try {
    setSingularValuesImpl((x, m, n) => {
      seen.push([m, n]);
      return jsSingularValues(x, m, n).map((s) => s * 2);
    });
    assert.deepEqual(Array.from(singularValues(a, 2, 2)), [8, 6]);
    assert.deepEqual(seen, [[2, 2]]);
    // Shapes are checked before the plug-in sees them.
    assert.throws(() => singularValues(a, 3, 2), /expected m·n/);
    setSingularValuesImpl(() => new Float64Array(3));
    assert.throws(() => singularValues(a, 2, 2), /returned Float64Array of length 3 .* expected a Float64Array of length 2/);
  } finally {
    setSingularValuesImpl(null);
  }
  assert.deepEqual(Array.from(singularValues(a, 2, 2)), [4, 3]);
});
