/**
 * Dense linear algebra that the training step does not need but diagnostics do: singular values
 * (ReLoRA's rank-growth measurement: the sum of the merged updates ΣΔW reaches a far higher rank
 * than r; Lialin et al., ReLoRA, ICLR 2024).
 *
 * Method: σ(A)² are the eigenvalues of the smaller Gram matrix G = A·Aᵀ or Aᵀ·A, formed in
 * float64; G is reduced to tridiagonal form by Householder reflections and the tridiagonal
 * eigenvalues are found by the implicit QL method with Wilkinson shifts. Eigenvalues only, so no
 * transformation is ever accumulated: O(k²·L + 4k³/3) for A of k = min(m, n) by L = max(m, n).
 *
 * Accuracy: squaring A squares its condition number. Eigenvalues of G carry an absolute error of
 * about k·ε₆₄·σmax², so a singular value σ carries a relative error of about k·ε₆₄·(σmax/σ)²:
 * ~1e-10 at σ = 1e-3·σmax, but values below ~1e-8·σmax are noise (they come out as
 * ~1e-8·σmax or 0 rather than their true size). Rank counts at a 1% threshold are unaffected.
 * A native LAPACK implementation (bidiagonalisation, accurate for all values) can be plugged in
 * with `setSingularValuesImpl`.
 */

/** Singular values of a row-major m×n matrix, descending, length min(m, n). */
export type SingularValuesImpl = (a: Float32Array | Float64Array, m: number, n: number) => Float64Array;

let impl: SingularValuesImpl | null = null;

/** Route `singularValues` to another implementation (e.g. the native addon); null restores the TypeScript one. */
export function setSingularValuesImpl(fn: SingularValuesImpl | null): void {
  impl = fn;
}

/** Singular values of the row-major m×n matrix `a`, in descending order (length min(m, n)). */
export function singularValues(a: Float32Array | Float64Array, m: number, n: number): Float64Array {
  checkMatrix(a, m, n, 'singularValues');
  if (!impl) return jsSingularValues(a, m, n);
  const s = impl(a, m, n);
  if (!(s instanceof Float64Array) || s.length !== Math.min(m, n)) {
    throw new Error(`singularValues: the plugged-in implementation returned ${describe(s)} for a ${m}×${n} matrix; expected a Float64Array of length ${Math.min(m, n)}`);
  }
  return s;
}

/** The TypeScript implementation (always available; `singularValues` uses it unless another is plugged in). */
export function jsSingularValues(a: Float32Array | Float64Array, m: number, n: number): Float64Array {
  checkMatrix(a, m, n, 'jsSingularValues');
  const k = Math.min(m, n);
  // Scaling by the largest magnitude keeps the squares of float32 extremes (up to 1e77, down to
  // 1e-90) comfortably inside float64 through the Gram product and the reflections.
  let amax = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    if (v > amax) amax = v;
  }
  if (amax === 0) return new Float64Array(k);
  const rows = shortSideRows(a, m, n, 1 / amax);
  const g = gramLower(rows, k, Math.max(m, n));
  const lambda = symmetricEigenvaluesInPlace(g, k);
  const s = new Float64Array(k);
  // The eigenvalues come back ascending; rounding can leave the zero ones slightly negative.
  for (let i = 0; i < k; i++) s[i] = Math.sqrt(Math.max(lambda[k - 1 - i], 0)) * amax;
  return s;
}

/**
 * Eigenvalues of the symmetric n×n row-major matrix `g` (only its lower triangle is read), ascending.
 * `g` is left untouched.
 */
export function symmetricEigenvalues(g: Float64Array, n: number): Float64Array {
  if (!Number.isInteger(n) || n < 1) throw new Error(`symmetricEigenvalues: n must be a positive integer, got ${n}`);
  if (g.length !== n * n) throw new Error(`symmetricEigenvalues: matrix has ${g.length} entries; expected n² = ${n * n}`);
  for (let i = 0; i < g.length; i++) {
    if (!Number.isFinite(g[i])) throw new Error(`symmetricEigenvalues: entry ${i} (row ${Math.floor(i / n)}, column ${i % n}) is ${g[i]}; expected a finite number`);
  }
  return symmetricEigenvaluesInPlace(Float64Array.from(g), n);
}

function checkMatrix(a: Float32Array | Float64Array, m: number, n: number, where: string): void {
  if (!Number.isInteger(m) || m < 1) throw new Error(`${where}: rows m must be a positive integer, got ${m}`);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${where}: columns n must be a positive integer, got ${n}`);
  if (a.length !== m * n) throw new Error(`${where}: matrix has ${a.length} entries; expected m·n = ${m}·${n} = ${m * n}`);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${where}: entry ${i} (row ${Math.floor(i / n)}, column ${i % n}) is ${a[i]}; expected a finite number`);
  }
}

function describe(x: unknown): string {
  if (ArrayBuffer.isView(x)) return `${x.constructor.name} of length ${(x as Float64Array).length}`;
  return typeof x;
}

/**
 * The k = min(m, n) "short side" vectors of A as contiguous float64 rows of length max(m, n),
 * times `scale`: A's rows when m <= n, else A's columns. Their Gram matrix has the eigenvalues σ².
 */
function shortSideRows(a: Float32Array | Float64Array, m: number, n: number, scale: number): Float64Array {
  const out = new Float64Array(m * n);
  if (m <= n) {
    for (let i = 0; i < out.length; i++) out[i] = a[i] * scale;
    return out;
  }
  // Transpose in tiles so that neither side strides through memory a whole row at a time.
  const T = 32;
  for (let i0 = 0; i0 < m; i0 += T) {
    const i1 = Math.min(i0 + T, m);
    for (let j0 = 0; j0 < n; j0 += T) {
      const j1 = Math.min(j0 + T, n);
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < j1; j++) out[j * m + i] = a[i * n + j] * scale;
      }
    }
  }
  return out;
}

/**
 * Lower triangle of G = R·Rᵀ for the k×L row-major R; the upper triangle is not meaningful
 * (mostly 0, one entry above the diagonal per row pair) and is never read.
 * Each G entry is a dot product of two contiguous rows. Rows are taken two by two against four
 * at a time (8 running sums from 6 loads per column), and the columns in chunks so that the
 * six row pieces in play stay in L1 cache.
 */
function gramLower(r: Float64Array, k: number, L: number): Float64Array {
  const g = new Float64Array(k * k);
  const CHUNK = 512;
  for (let t0 = 0; t0 < L; t0 += CHUNK) {
    const t1 = Math.min(t0 + CHUNK, L);
    let i = 0;
    for (; i + 1 < k; i += 2) {
      const ri = i * L, ri1 = ri + L;
      // Columns j <= i + 1 of rows i and i + 1; the pair's own 2×2 corner is included, so one
      // entry above the diagonal, (i, i + 1), is computed too (harmless: never read).
      let j = 0;
      for (; j + 3 <= i + 1; j += 4) {
        const rj0 = j * L, rj1 = rj0 + L, rj2 = rj1 + L, rj3 = rj2 + L;
        let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
        for (let t = t0; t < t1; t++) {
          const x0 = r[ri + t], x1 = r[ri1 + t];
          const y0 = r[rj0 + t], y1 = r[rj1 + t], y2 = r[rj2 + t], y3 = r[rj3 + t];
          s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
          s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        }
        const gi = i * k + j, gi1 = gi + k;
        g[gi] += s00; g[gi + 1] += s01; g[gi + 2] += s02; g[gi + 3] += s03;
        g[gi1] += s10; g[gi1 + 1] += s11; g[gi1 + 2] += s12; g[gi1 + 3] += s13;
      }
      for (; j <= i + 1; j++) {
        const rj = j * L;
        let s0 = 0, s1 = 0;
        for (let t = t0; t < t1; t++) {
          const y = r[rj + t];
          s0 += r[ri + t] * y;
          s1 += r[ri1 + t] * y;
        }
        g[i * k + j] += s0;
        g[(i + 1) * k + j] += s1;
      }
    }
    for (; i < k; i++) {
      // The odd last row.
      const ri = i * L;
      for (let j = 0; j <= i; j++) {
        const rj = j * L;
        let s = 0;
        for (let t = t0; t < t1; t++) s += r[ri + t] * r[rj + t];
        g[i * k + j] += s;
      }
    }
  }
  return g;
}

/**
 * Eigenvalues (ascending) of the symmetric n×n matrix whose lower triangle is in `a`; `a` is
 * overwritten. Householder tridiagonalisation followed by implicit QL.
 */
function symmetricEigenvaluesInPlace(a: Float64Array, n: number): Float64Array {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tridiagonalise(a, n, d, e);
  tridiagonalEigenvalues(d, e);
  return d.sort();
}

/**
 * Householder reduction of the symmetric matrix (lower triangle of row-major `a`) to a
 * tridiagonal T with the same eigenvalues: diagonal in d[0..n-1], sub-diagonal T[i+1][i] in
 * e[i] (e[n-1] = 0).
 *
 * Step c zeroes column c below the sub-diagonal with H = I − β·v·vᵀ acting on rows/columns c+1…:
 * the trailing block S becomes H·S·H = S − v·wᵀ − w·vᵀ where p = β·S·v, w = p − (β/2)(vᵀp)·v.
 * Only the lower triangle of S is stored and updated; S·v is formed from it row by row, each
 * stored entry S[i][j] (j < i) contributing to both p[i] and p[j], so every access is along a row.
 */
function tridiagonalise(a: Float64Array, n: number, d: Float64Array, e: Float64Array): void {
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let c = 0; c + 2 < n; c++) {
    const s0 = c + 1; // first row/column of the trailing block
    // x = column c below the diagonal; scaled so that its squared norm cannot under/overflow.
    let scale = 0;
    for (let i = s0; i < n; i++) scale = Math.max(scale, Math.abs(a[i * n + c]));
    d[c] = a[c * n + c];
    if (scale === 0) {
      e[c] = 0; // already zero below the diagonal: nothing to reflect
      continue;
    }
    let norm2 = 0;
    for (let i = s0; i < n; i++) {
      v[i] = a[i * n + c] / scale;
      norm2 += v[i] * v[i];
    }
    // H·x = alpha·e₁ with alpha of sign opposite to x₁, so that v₁ = x₁ − alpha does not cancel.
    const alpha = v[s0] >= 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    e[c] = alpha * scale;
    v[s0] -= alpha;
    // vᵀv = ‖x‖² − 2·alpha·x₁ + alpha² = 2(alpha² − alpha·x₁)
    const beta = 1 / (alpha * alpha - alpha * (v[s0] + alpha));
    // p = β·S·v from the lower triangle.
    p.fill(0, s0, n);
    for (let i = s0; i < n; i++) {
      const row = i * n;
      const vi = v[i];
      let acc = a[row + i] * vi;
      for (let j = s0; j < i; j++) {
        const sij = a[row + j];
        acc += sij * v[j];
        p[j] += sij * vi;
      }
      p[i] += acc;
    }
    let vp = 0;
    for (let i = s0; i < n; i++) {
      p[i] *= beta;
      vp += v[i] * p[i];
    }
    const half = 0.5 * beta * vp;
    for (let i = s0; i < n; i++) p[i] -= half * v[i]; // p now holds w
    for (let i = s0; i < n; i++) {
      const row = i * n;
      const vi = v[i], wi = p[i];
      for (let j = s0; j <= i; j++) a[row + j] -= vi * p[j] + wi * v[j];
    }
  }
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * n + n - 2];
    e[n - 2] = a[(n - 1) * n + n - 2];
  }
  d[n - 1] = a[(n - 1) * n + n - 1];
  e[n - 1] = 0;
}

/**
 * Eigenvalues of the symmetric tridiagonal matrix (diagonal d, sub-diagonal e[0..n-2]) by the
 * implicit QL method, written into d (unordered); e is destroyed.
 *
 * For each leading index l: find the first negligible sub-diagonal e[m] at or after l (the block
 * l…m is unreduced). If m = l, d[l] is an eigenvalue. Otherwise take one QL step on the block
 * with the Wilkinson shift (the eigenvalue of the leading 2×2 nearer d[l]), applied implicitly as
 * a chain of plane rotations chasing the bulge from the bottom (m) up to l; repeat until e[l]
 * is negligible. Convergence is cubic in practice; 50 sweeps per eigenvalue is far more than
 * ever needed, so running out means the input was not a real symmetric matrix.
 */
function tridiagonalEigenvalues(d: Float64Array, e: Float64Array): void {
  const n = d.length;
  const EPS = Number.EPSILON;
  // A sub-diagonal is also negligible below EPS·‖T‖: without this absolute floor, a cluster of
  // (numerically) zero eigenvalues — a low-rank update's Gram matrix — never passes the relative test.
  let norm = 0;
  for (let i = 0; i < n; i++) norm = Math.max(norm, Math.abs(d[i]) + Math.abs(e[i]) + (i > 0 ? Math.abs(e[i - 1]) : 0));
  const floor = EPS * norm;
  for (let l = 0; l < n; l++) {
    for (let sweep = 0; ; sweep++) {
      let m = l;
      while (m < n - 1 && Math.abs(e[m]) > Math.max(floor, EPS * (Math.abs(d[m]) + Math.abs(d[m + 1])))) m++;
      if (m === l) break;
      if (sweep === 50) throw new Error(`symmetric eigenvalues: QL iteration did not converge for eigenvalue ${l} of ${n}`);

      // Wilkinson shift μ, folded into g = d[m] − μ, the first element the rotations act on.
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));

      let s = 1, c = 1, shift = 0;
      let i = m - 1;
      for (; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // The bulge underflowed: the matrix already splits at i + 1. Undo the pending
          // shift on d[i + 1] and restart the search for a negligible e.
          d[i + 1] -= shift;
          e[m] = 0;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - shift;
        r = (d[i] - g) * s + 2 * c * b;
        shift = s * r;
        d[i + 1] = g + shift;
        g = c * r - b;
      }
      if (i >= l) continue; // the split case above
      d[l] -= shift;
      e[l] = g;
      e[m] = 0;
    }
  }
}
