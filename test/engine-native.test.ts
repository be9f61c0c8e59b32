/**
 * The native backend agrees with the js reference on every kernel: random shapes including odd
 * sizes and size 1, all transpose combinations, batch/stride/broadcast GEMM, null gradients,
 * accumulation into non-zero gradients, and size validation that throws instead of crashing.
 *
 * A missing addon is a failure, not a skip: `npm install` builds it, and CI installs libdnnl-dev.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';

import { roundBf16, widenBf16 } from '../src/engine/backends/bf16.ts';
import { jsKernels as js } from '../src/engine/backends/js.ts';
import type { Kernels } from '../src/engine/backends/kernels.ts';
import { benchGemmDirect, loadNativeKernels, nativeBuiltinGemm, nativeLoadError, OPENMP_SPIN_COUNT, setOpenMpWaitPolicy } from '../src/engine/backends/native.ts';
import { dropThreshold, hash32, RandomStream } from '../src/engine/rng.ts';

const loaded = loadNativeKernels();
const ONEDNN_INSTALLED = existsSync('/usr/include/oneapi/dnnl/dnnl.h') &&
  (existsSync('/usr/lib/x86_64-linux-gnu/libdnnl.so') || existsSync('/usr/lib/aarch64-linux-gnu/libdnnl.so') || existsSync('/usr/lib/libdnnl.so'));

/** Fails loudly (with the loader's reason) when the addon did not build or load. */
function nat(): Kernels {
  if (!loaded) assert.fail(`native addon not available: ${nativeLoadError()}`);
  return loaded;
}

let seed = 1;
function rand(n: number, low = -1, high = 1): Float32Array {
  const out = new Float32Array(n);
  new RandomStream(seed++).uniform(out, low, high);
  return out;
}

function randIds(n: number, vocab: number): Int32Array {
  const u = rand(n, 0, 1);
  return Int32Array.from(u, (x) => Math.min(vocab - 1, Math.floor(x * vocab)));
}

/** Element-wise: |a - e| <= rtol * |e| + atol for every element. */
function assertClose(actual: Float32Array, expected: Float32Array, rtol: number, atol: number, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) ? !Number.isNaN(a) : !(Math.abs(a - e) <= rtol * Math.abs(e) + atol)) {
      assert.fail(`${label}: element ${i} is ${a}, expected ${e}`);
    }
  }
}

/** Norm-wise, for reductions whose rounding grows with their length (GEMM, attention). */
function assertNormClose(actual: Float32Array, expected: Float32Array, tol: number, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let scale = 1;
  for (const e of expected) if (!Number.isNaN(e)) scale = Math.max(scale, Math.abs(e));
  for (let i = 0; i < expected.length; i++) {
    // NaN only where both leave the input's NaN padding alone.
    if (Number.isNaN(expected[i]) ? !Number.isNaN(actual[i]) : !(Math.abs(actual[i] - expected[i]) <= tol * scale)) {
      assert.fail(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]} (tolerance ${tol * scale})`);
    }
  }
}

const ELEM_RTOL = 1e-5;
const ELEM_ATOL = 1e-6;
const GEMM_TOL = 1e-4;

describe('native backend', () => {
  it('is built and loads (with oneDNN when it is installed)', () => {
    const k = nat();
    assert.equal(k.name, 'native');
    assert.ok(k.blas === 'onednn' || k.blas === 'builtin', `blas is ${k.blas}`);
    if (ONEDNN_INSTALLED) assert.equal(k.blas, 'onednn', 'oneDNN is installed but the addon was built without it');
  });

  it('sets and reports threads, rejecting nonsense', () => {
    const k = nat();
    const before = k.getThreads();
    assert.ok(before >= 1);
    k.setThreads(1);
    assert.equal(k.getThreads(), 1);
    k.setThreads(before);
    assert.equal(k.getThreads(), before);
    assert.throws(() => k.setThreads(0), /setThreads/);
    assert.throws(() => k.setThreads(1.5), /setThreads/);
  });
});

describe('native gemm', () => {
  type Case = { M: number; N: number; K: number; pad: number };
  const shapes: Case[] = [
    { M: 1, N: 1, K: 1, pad: 0 }, { M: 1, N: 9, K: 4, pad: 2 }, { M: 7, N: 1, K: 13, pad: 1 },
    { M: 5, N: 6, K: 1, pad: 0 }, { M: 17, N: 33, K: 65, pad: 3 }, { M: 130, N: 67, K: 257, pad: 5 },
  ];

  function run(k: Kernels, tA: boolean, tB: boolean, c: Case, alpha: number, beta: number, batch: number,
    strides: { a?: number; b?: number; c?: number }, A: Float32Array, B: Float32Array, C0: Float32Array): Float32Array {
    const { M, N, K, pad } = c;
    const lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad;
    const C = C0.slice();
    k.gemm(tA, tB, M, N, K, alpha, A, lda, strides.a ?? 0, B, ldb, strides.b ?? 0, beta, C, ldc, strides.c ?? 0, batch);
    return C;
  }

  function sizes(tA: boolean, tB: boolean, c: Case) {
    const { M, N, K, pad } = c;
    const aSize = (tA ? K * (M + pad) : M * (K + pad));
    const bSize = (tB ? N * (K + pad) : K * (N + pad));
    const cSize = M * (N + pad);
    return { aSize, bSize, cSize };
  }

  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      it(`agrees with js, transA=${tA} transB=${tB}, odd shapes and leading dimensions`, () => {
        for (const c of shapes) {
          const { aSize, bSize, cSize } = sizes(tA, tB, c);
          const A = rand(aSize), B = rand(bSize), C0 = rand(cSize);
          for (const [alpha, beta] of [[1, 0], [0.5, 1], [-1.25, 0.75]]) {
            const expected = run(js, tA, tB, c, alpha, beta, 1, {}, A, B, C0);
            const actual = run(nat(), tA, tB, c, alpha, beta, 1, {}, A, B, C0);
            assertNormClose(actual, expected, GEMM_TOL, `gemm ${JSON.stringify(c)} alpha=${alpha} beta=${beta}`);
          }
        }
      });
    }
  }

  it('built-in fallback GEMM agrees with js (all transposes, several cache blocks, beta 0 over NaN)', () => {
    nat();
    const builtin = nativeBuiltinGemm()!;
    const viaBuiltin = { ...js, gemm: builtin } as Kernels;
    // K = 300 and N = 1100 cross the kernel's 256-deep and 1024-wide blocks; M = 13 leaves a ragged 6-row panel.
    const cases = [...shapes, { M: 13, N: 1100, K: 300, pad: 2 }];
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const c of cases) {
        const { aSize, bSize, cSize } = sizes(tA, tB, c);
        const A = rand(aSize), B = rand(bSize), C0 = rand(cSize);
        for (const [alpha, beta] of [[1, 0], [-0.5, 1.5]]) {
          const expected = run(js, tA, tB, c, alpha, beta, 1, {}, A, B, C0);
          const actual = run(viaBuiltin, tA, tB, c, alpha, beta, 1, {}, A, B, C0);
          assertNormClose(actual, expected, GEMM_TOL, `builtin gemm ${JSON.stringify(c)} tA=${tA} tB=${tB} alpha=${alpha} beta=${beta}`);
        }
        const nan = run(viaBuiltin, tA, tB, c, 1, 0, 1, {}, A, B, new Float32Array(cSize).fill(NaN));
        for (let i = 0; i < c.M; i++) {
          for (let j = 0; j < c.N; j++) assert.ok(!Number.isNaN(nan[i * (c.N + c.pad) + j]), 'builtin read C with beta 0');
        }
      }
    }
    const batch = 5, c = { M: 8, N: 9, K: 10, pad: 0 };
    const A = rand(80 * batch), B = rand(90), C0 = rand(72 * batch);
    assertNormClose(run(viaBuiltin, false, false, c, 1, 0.5, batch, { a: 80, b: 0, c: 72 }, A, B, C0),
      run(js, false, false, c, 1, 0.5, batch, { a: 80, b: 0, c: 72 }, A, B, C0), GEMM_TOL, 'builtin batched, B broadcast');
    assert.throws(() => builtin(false, false, 3, 3, 4, 1, new Float32Array(11), 4, 0, new Float32Array(12), 3, 0, 0, new Float32Array(9), 3, 0, 1), /gemmBuiltin: A has 11/);
  });

  it('does not read C when beta is 0 (NaNs in C do not propagate)', () => {
    for (const [tA, tB] of [[false, false], [true, true]]) {
      const c = { M: 19, N: 23, K: 31, pad: 1 };
      const { aSize, bSize, cSize } = sizes(tA, tB, c);
      const A = rand(aSize), B = rand(bSize), C0 = new Float32Array(cSize).fill(NaN);
      const actual = run(nat(), tA, tB, c, 1, 0, 1, {}, A, B, C0);
      for (let i = 0; i < c.M; i++) {
        for (let j = 0; j < c.N; j++) assert.ok(Number.isFinite(actual[i * (c.N + 1) + j]), `C[${i},${j}] is ${actual[i * (c.N + 1) + j]}`);
      }
      const expected = run(js, tA, tB, c, 1, 0, 1, {}, A, B, C0);
      assertNormClose(actual, expected, GEMM_TOL, 'gemm beta=0 over NaN');
    }
  });

  it('handles K = 0 (C = beta*C) and empty products', () => {
    const C0 = rand(12);
    const A = new Float32Array(0), B = new Float32Array(0);
    const C = C0.slice();
    nat().gemm(false, false, 3, 4, 0, 1, A, 0, 0, B, 4, 0, 0.5, C, 4, 0, 1);
    assertClose(C, C0.map((x) => x * 0.5), ELEM_RTOL, ELEM_ATOL, 'K=0');
    const D = C0.slice();
    nat().gemm(false, false, 0, 4, 3, 1, A, 3, 0, B, 4, 0, 0, D, 4, 0, 1);
    assert.deepEqual(D, C0, 'M=0 leaves C untouched');
  });

  it('agrees with js on batches: strided, broadcast operands, small and large products', () => {
    const cases: { c: Case; batch: number }[] = [
      { c: { M: 16, N: 12, K: 20, pad: 1 }, batch: 7 }, // small: one product per thread
      { c: { M: 150, N: 140, K: 130, pad: 0 }, batch: 2 }, // large: the library's own threads
    ];
    for (const { c, batch } of cases) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const { aSize, bSize, cSize } = sizes(tA, tB, c);
        const sa = aSize + 3, sb = bSize + 2, sc = cSize + 4;
        for (const bcast of ['none', 'A', 'B'] as const) {
          const strides = { a: bcast === 'A' ? 0 : sa, b: bcast === 'B' ? 0 : sb, c: sc };
          const A = rand(sa * batch), B = rand(sb * batch), C0 = rand(sc * batch);
          const expected = run(js, tA, tB, c, 0.75, 0.5, batch, strides, A, B, C0);
          const actual = run(nat(), tA, tB, c, 0.75, 0.5, batch, strides, A, B, C0);
          assertNormClose(actual, expected, GEMM_TOL, `batched gemm ${JSON.stringify(c)} x${batch} tA=${tA} tB=${tB} broadcast ${bcast}`);
        }
      }
    }
  });

  it('runs overlapping C batches in order (stride 0 with beta 1 sums the products)', () => {
    const c = { M: 9, N: 11, K: 5, pad: 0 }, batch = 6;
    const A = rand(c.M * c.K * batch), B = rand(c.K * c.N * batch), C0 = rand(c.M * c.N);
    const strides = { a: c.M * c.K, b: c.K * c.N, c: 0 };
    const expected = run(js, false, false, c, 1, 1, batch, strides, A, B, C0);
    const actual = run(nat(), false, false, c, 1, 1, batch, strides, A, B, C0);
    assertNormClose(actual, expected, GEMM_TOL, 'accumulating batch');
  });

  it('throws on bad sizes and types instead of touching memory', () => {
    const k = nat();
    const A = new Float32Array(12), B = new Float32Array(12), C = new Float32Array(9);
    assert.throws(() => k.gemm(false, false, 3, 3, 4, 1, A.subarray(1), 4, 0, B, 3, 0, 0, C, 3, 0, 1), /gemm: A has 11 elements/);
    assert.throws(() => k.gemm(false, false, 3, 3, 4, 1, A, 4, 0, B, 3, 0, 0, C.subarray(1), 3, 0, 1), /gemm: C has 8/);
    assert.throws(() => k.gemm(false, false, 3, 3, 4, 1, A, 4, 0, B, 3, 0, 0, C, 3, 9, 2), /gemm: C/);
    assert.throws(() => k.gemm(false, false, 3, 3, 4, 1, A, 3, 0, B, 3, 0, 0, C, 3, 0, 1), /leading dimension of A/);
    assert.throws(() => k.gemm(false, true, 3, 3, 4, 1, A, 4, 0, B, 3, 0, 0, C, 3, 0, 1), /leading dimension of B/);
    assert.throws(() => k.gemm(false, false, 3.5, 3, 4, 1, A, 4, 0, B, 3, 0, 0, C, 3, 0, 1), /gemm: M must be a non-negative integer/);
    assert.throws(() => k.gemm(false, false, -1, 3, 4, 1, A, 4, 0, B, 3, 0, 0, C, 3, 0, 1), /gemm: M/);
    const wrong = new Float64Array(12) as unknown as Float32Array;
    assert.throws(() => k.gemm(false, false, 3, 3, 4, 1, wrong, 4, 0, B, 3, 0, 0, C, 3, 0, 1), /gemm: A must be a Float32Array/);
    assert.throws(() => (k.gemm as (...args: unknown[]) => void)(false, false, 3, 3), /gemm: expected 17 arguments/);
  });

  it('benchGemmDirect measures a positive rate', () => {
    nat();
    const gflops = benchGemmDirect(false, true, 64, 48, 32, 3);
    assert.ok(Number.isFinite(gflops) && gflops > 0, `got ${gflops}`);
    assert.throws(() => benchGemmDirect(false, false, 0, 4, 4, 1), /benchGemmDirect/);
  });
});

describe('native elementwise kernels', () => {
  const lengths = [0, 1, 7, 100_003]; // the last one takes the multithreaded path

  it('add, mul, scale, axpy, addScalar, fill agree with js', () => {
    for (const n of lengths) {
      const a = rand(n), b = rand(n), y0 = rand(n);
      const both = (f: (k: Kernels, out: Float32Array) => void, label: string, init = y0): void => {
        const e = init.slice(), g = init.slice();
        f(js, e);
        f(nat(), g);
        assertClose(g, e, ELEM_RTOL, ELEM_ATOL, `${label} n=${n}`);
      };
      both((k, out) => k.add(a, b, out, n), 'add');
      both((k, out) => k.mul(a, b, out, n), 'mul');
      both((k, out) => k.scale(a, -1.7, out, n), 'scale');
      both((k, out) => k.axpy(0.3, a, out, n), 'axpy');
      both((k, out) => k.addScalar(out, 2.5, n), 'addScalar');
      both((k, out) => k.fill(out, -4.25, n), 'fill');
    }
  });

  it('sum and sumSquares agree with js (float64 accumulation)', () => {
    for (const n of lengths) {
      const x = rand(n, -2, 3);
      assert.ok(Math.abs(nat().sum(x, n) - js.sum(x, n)) <= 1e-9 * (1 + Math.abs(js.sum(x, n))), `sum n=${n}`);
      assert.ok(Math.abs(nat().sumSquares(x, n) - js.sumSquares(x, n)) <= 1e-9 * (1 + js.sumSquares(x, n)), `sumSquares n=${n}`);
    }
    assert.equal(nat().sum(Float32Array.of(1, 2, 3, 100), 3), 6, 'n limits the range');
  });

  it('only touch the first n elements', () => {
    const out = new Float32Array(5);
    nat().fill(out, 1, 3);
    assert.deepEqual([...out], [1, 1, 1, 0, 0]);
  });

  it('throw when n exceeds an array', () => {
    const k = nat();
    const x = new Float32Array(4), short = new Float32Array(3);
    assert.throws(() => k.add(x, short, x, 4), /add: b has 3 elements/);
    assert.throws(() => k.mul(x, x, short, 4), /mul: out/);
    assert.throws(() => k.scale(short, 2, x, 4), /scale: a/);
    assert.throws(() => k.axpy(1, x, short, 4), /axpy: y/);
    assert.throws(() => k.addScalar(short, 1, 4), /addScalar: out/);
    assert.throws(() => k.fill(short, 0, 4), /fill: out/);
    assert.throws(() => k.sum(short, 4), /sum: x/);
    assert.throws(() => k.sumSquares(short, 4), /sumSquares: x/);
    assert.throws(() => k.add(x, x, x, -1), /add: n must be a non-negative integer/);
  });
});

describe('native embedding', () => {
  it('forward and backward agree with js (repeated ids accumulate)', () => {
    for (const [nIds, vocab, dim] of [[1, 1, 1], [13, 5, 7], [600, 97, 130]]) {
      const weight = rand(vocab * dim), ids = randIds(nIds, vocab);
      ids[0] = vocab - 1;
      const e = new Float32Array(nIds * dim), g = new Float32Array(nIds * dim);
      js.embeddingForward(weight, ids, e, nIds, vocab, dim);
      nat().embeddingForward(weight, ids, g, nIds, vocab, dim);
      assert.deepEqual(g, e, 'forward is an exact copy');
      const dout = rand(nIds * dim), dw0 = rand(vocab * dim);
      const de = dw0.slice(), dg = dw0.slice();
      js.embeddingBackward(dout, ids, de, nIds, vocab, dim);
      nat().embeddingBackward(dout, ids, dg, nIds, vocab, dim);
      assertClose(dg, de, ELEM_RTOL, ELEM_ATOL, `embeddingBackward ${nIds}x${vocab}x${dim}`);
    }
  });

  it('throws on an out-of-range id before writing anything', () => {
    const k = nat();
    const weight = rand(4 * 3), out = new Float32Array(3 * 3).fill(7);
    assert.throws(() => k.embeddingForward(weight, Int32Array.of(1, 4, 0), out, 3, 4, 3), /embeddingForward: token id 4 at position 1 is outside \[0, 4\)/);
    assert.throws(() => k.embeddingForward(weight, Int32Array.of(-1, 0, 0), out, 3, 4, 3), /token id -1 at position 0/);
    assert.ok(out.every((x) => x === 7), 'out was written');
    const dw = new Float32Array(12);
    assert.throws(() => k.embeddingBackward(rand(9), Int32Array.of(0, 9, 1), dw, 3, 4, 3), /embeddingBackward: token id 9/);
    assert.ok(dw.every((x) => x === 0), 'dWeight was written');
    assert.throws(() => k.embeddingForward(weight, Int32Array.of(0, 1), out, 3, 4, 3), /ids has 2 elements/);
    assert.throws(() => k.embeddingForward(weight.subarray(1), Int32Array.of(0, 1, 2), out, 3, 4, 3), /weight has 11/);
    assert.throws(() => k.embeddingForward(weight, Float32Array.of(0, 1, 2) as unknown as Int32Array, out, 3, 4, 3), /ids must be an Int32Array/);
  });
});

describe('native rmsnorm', () => {
  it('forward and backward agree with js, with and without each gradient', () => {
    for (const [rows, dim] of [[1, 1], [3, 7], [67, 129], [300, 256]]) {
      const x = rand(rows * dim, -3, 3), w = rand(dim, 0.5, 1.5), eps = 1e-5;
      const oe = new Float32Array(rows * dim), og = new Float32Array(rows * dim);
      const re = new Float32Array(rows), rg = new Float32Array(rows);
      js.rmsnormForward(x, w, oe, re, rows, dim, eps);
      nat().rmsnormForward(x, w, og, rg, rows, dim, eps);
      assertClose(rg, re, ELEM_RTOL, ELEM_ATOL, `rstd ${rows}x${dim}`);
      assertClose(og, oe, ELEM_RTOL, ELEM_ATOL, `rmsnorm out ${rows}x${dim}`);
      const dout = rand(rows * dim), dx0 = rand(rows * dim), dw0 = rand(dim);
      for (const [wantDx, wantDw] of [[true, true], [true, false], [false, true], [false, false]]) {
        const dxe = wantDx ? dx0.slice() : null, dxg = wantDx ? dx0.slice() : null;
        const dwe = wantDw ? dw0.slice() : null, dwg = wantDw ? dw0.slice() : null;
        js.rmsnormBackward(dout, x, w, re, dxe, dwe, rows, dim);
        nat().rmsnormBackward(dout, x, w, re, dxg, dwg, rows, dim);
        if (dxe && dxg) assertClose(dxg, dxe, 1e-4, 1e-5, `rmsnorm dx ${rows}x${dim}`);
        if (dwe && dwg) assertNormClose(dwg, dwe, 1e-5, `rmsnorm dWeight ${rows}x${dim}`);
      }
    }
  });

  it('throws on short buffers', () => {
    const k = nat();
    assert.throws(() => k.rmsnormForward(rand(6), rand(3), new Float32Array(6), new Float32Array(1), 2, 3, 1e-5), /rmsnormForward: rstd has 1 elements but rows needs 2/);
    assert.throws(() => k.rmsnormBackward(rand(6), rand(6), rand(3), rand(2), new Float32Array(5), null, 2, 3), /rmsnormBackward: dx has 5/);
    assert.throws(() => k.rmsnormBackward(rand(6), rand(6), rand(2), rand(2), null, null, 2, 3), /rmsnormBackward: weight/);
  });
});

describe('native rope', () => {
  function tables(T: number, D: number): { cos: Float32Array; sin: Float32Array } {
    const half = D / 2, cos = new Float32Array(T * half), sin = new Float32Array(T * half);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < half; i++) {
        const angle = t * 10000 ** (-2 * i / D);
        cos[t * half + i] = Math.cos(angle);
        sin[t * half + i] = Math.sin(angle);
      }
    }
    return { cos, sin };
  }

  it('forward and backward agree with js', () => {
    for (const [B, T, H, D] of [[1, 1, 1, 2], [2, 5, 3, 6], [3, 33, 4, 16]]) {
      const n = B * T * H * D, { cos, sin } = tables(T, D), x = rand(n);
      const e = new Float32Array(n), g = new Float32Array(n);
      js.ropeForward(x, cos, sin, e, B, T, H, D);
      nat().ropeForward(x, cos, sin, g, B, T, H, D);
      assertClose(g, e, ELEM_RTOL, ELEM_ATOL, `rope forward ${[B, T, H, D]}`);
      const dout = rand(n), dx0 = rand(n), de = dx0.slice(), dg = dx0.slice();
      js.ropeBackward(dout, cos, sin, de, B, T, H, D);
      nat().ropeBackward(dout, cos, sin, dg, B, T, H, D);
      assertClose(dg, de, ELEM_RTOL, ELEM_ATOL, `rope backward ${[B, T, H, D]}`);
    }
  });

  it('throws on an odd head dimension or short tables', () => {
    const k = nat();
    assert.throws(() => k.ropeForward(rand(6), rand(3), rand(3), new Float32Array(6), 1, 2, 1, 3), /ropeForward: head dimension D=3 must be even/);
    assert.throws(() => k.ropeBackward(rand(8), rand(3), rand(4), new Float32Array(8), 1, 2, 1, 4), /ropeBackward: cos has 3/);
  });
});

describe('native attention', () => {
  // T = 300 spans two of the kernel's 256-row query blocks.
  const shapes = [[1, 1, 1, 1], [2, 5, 3, 4], [3, 17, 1, 7], [1, 300, 2, 4], [2, 64, 4, 16]];

  it('forward agrees with js; probabilities are causal rows summing to 1', () => {
    for (const [B, T, H, D] of shapes) {
      const n = B * T * H * D, q = rand(n, -2, 2), k = rand(n, -2, 2), v = rand(n), scale = 1 / Math.sqrt(D);
      const oe = new Float32Array(n), pe = new Float32Array(B * H * T * T);
      const og = new Float32Array(n).fill(NaN), pg = new Float32Array(B * H * T * T).fill(NaN);
      js.attentionForward(q, k, v, oe, pe, B, T, H, D, scale);
      nat().attentionForward(q, k, v, og, pg, B, T, H, D, scale);
      assertNormClose(og, oe, GEMM_TOL, `attention out ${[B, T, H, D]}`);
      assertNormClose(pg, pe, GEMM_TOL, `attention probs ${[B, T, H, D]}`);
      for (let r = 0; r < B * H * T; r++) {
        const t = r % T;
        let s = 0;
        for (let j = 0; j < T; j++) {
          if (j > t) assert.equal(pg[r * T + j], 0, `probs above the diagonal at row ${r}`);
          s += pg[r * T + j];
        }
        assert.ok(Math.abs(s - 1) < 1e-5, `row ${r} sums to ${s}`);
      }
    }
  });

  it('backward agrees with js, accumulating, for every subset of gradients', () => {
    for (const [B, T, H, D] of shapes) {
      const n = B * T * H * D, q = rand(n, -2, 2), k = rand(n, -2, 2), v = rand(n), scale = 1 / Math.sqrt(D);
      const out = new Float32Array(n), probs = new Float32Array(B * H * T * T);
      js.attentionForward(q, k, v, out, probs, B, T, H, D, scale);
      const dout = rand(n), init = [rand(n), rand(n), rand(n)];
      for (let mask = 0; mask < 8; mask++) {
        const want = [mask & 1, mask & 2, mask & 4].map(Boolean);
        const e = init.map((g, i) => (want[i] ? g.slice() : null));
        const g = init.map((x, i) => (want[i] ? x.slice() : null));
        js.attentionBackward(dout, q, k, v, probs, e[0], e[1], e[2], B, T, H, D, scale);
        nat().attentionBackward(dout, q, k, v, probs, g[0], g[1], g[2], B, T, H, D, scale);
        for (let i = 0; i < 3; i++) {
          if (want[i]) assertNormClose(g[i]!, e[i]!, GEMM_TOL, `attention ${['dq', 'dk', 'dv'][i]} ${[B, T, H, D]} mask ${mask}`);
        }
      }
    }
  });

  it('throws on short buffers', () => {
    const k = nat();
    const n = 2 * 3 * 1 * 4;
    assert.throws(() => k.attentionForward(rand(n), rand(n), rand(n), new Float32Array(n), new Float32Array(17), 2, 3, 1, 4, 0.5), /attentionForward: probs has 17 elements but B\*H\*T\*T needs 18/);
    assert.throws(() => k.attentionForward(rand(n), rand(n - 1), rand(n), new Float32Array(n), new Float32Array(18), 2, 3, 1, 4, 0.5), /attentionForward: k has 23/);
    assert.throws(() => k.attentionBackward(rand(n), rand(n), rand(n), rand(n), rand(18), null, new Float32Array(3), null, 2, 3, 1, 4, 0.5), /attentionBackward: dk has 3/);
  });
});

describe('native activations', () => {
  const n = 50_001;
  const x = rand(n, -8, 8);
  x[0] = 0; x[1] = -100; x[2] = 100; x[3] = -90;

  it('silu forward and backward agree with js', () => {
    const e = new Float32Array(n), g = new Float32Array(n);
    js.siluForward(x, e, n);
    nat().siluForward(x, g, n);
    assertClose(g, e, ELEM_RTOL, ELEM_ATOL, 'silu');
    const dout = rand(n), d0 = rand(n), de = d0.slice(), dg = d0.slice();
    js.siluBackward(dout, x, de, n);
    nat().siluBackward(dout, x, dg, n);
    assertClose(dg, de, ELEM_RTOL, ELEM_ATOL, 'silu backward');
  });

  it('swiglu forward and backward agree with js, with null gradients', () => {
    const up = rand(n), e = new Float32Array(n), g = new Float32Array(n);
    js.swigluForward(x, up, e, n);
    nat().swigluForward(x, up, g, n);
    assertClose(g, e, ELEM_RTOL, ELEM_ATOL, 'swiglu');
    const dout = rand(n), g0 = rand(n), u0 = rand(n);
    for (const [wantGate, wantUp] of [[true, true], [true, false], [false, true], [false, false]]) {
      const ge = wantGate ? g0.slice() : null, gg = wantGate ? g0.slice() : null;
      const ue = wantUp ? u0.slice() : null, ug = wantUp ? u0.slice() : null;
      js.swigluBackward(dout, x, up, ge, ue, n, true);
      nat().swigluBackward(dout, x, up, gg, ug, n, true);
      if (ge && gg) assertClose(gg, ge, ELEM_RTOL, ELEM_ATOL, 'swiglu dGate');
      if (ue && ug) assertClose(ug, ue, ELEM_RTOL, ELEM_ATOL, 'swiglu dUp');
      // Written instead of added: what the buffers held (NaN) is gone; the value is 0 + the same term.
      for (const k of [js, nat()]) {
        const [gw, uw] = [wantGate, wantUp].map((w) => (w ? new Float32Array(n).fill(NaN) : null));
        const [gz, uz] = [wantGate, wantUp].map((w) => (w ? new Float32Array(n) : null));
        k.swigluBackward(dout, x, up, gw, uw, n, false);
        k.swigluBackward(dout, x, up, gz, uz, n, true);
        if (gw) assert.deepEqual(gw, gz, `${k.name} swiglu dGate written`);
        if (uw) assert.deepEqual(uw, uz, `${k.name} swiglu dUp written`);
      }
    }
  });

  it('throws on short buffers', () => {
    const k = nat();
    assert.throws(() => k.siluForward(rand(3), new Float32Array(2), 3), /siluForward: out has 2/);
    assert.throws(() => k.swigluBackward(rand(3), rand(3), rand(3), null, new Float32Array(2), 3, true), /swigluBackward: dUp has 2/);
  });
});

describe('native dropout mask', () => {
  it('is bit-identical to js and to hash32', () => {
    for (const n of [1, 1000, 100_003]) {
      for (const p of [0, 0.1, 0.5, 0.999]) {
        const key = hash32(12345, n) ;
        const threshold = dropThreshold(p), scale = 1 / (1 - p);
        const e = new Float32Array(n), g = new Float32Array(n);
        js.dropoutMask(e, n, key, threshold, scale);
        nat().dropoutMask(g, n, key, threshold, scale);
        assert.deepEqual(g, e, `dropout n=${n} p=${p}`);
        for (const i of [0, n - 1]) assert.equal(g[i], hash32(key, i) >= threshold ? Math.fround(scale) : 0);
      }
    }
    const all = new Float32Array(64);
    nat().dropoutMask(all, 64, 7, 2 ** 32 - 1, 3);
    const ref = new Float32Array(64);
    js.dropoutMask(ref, 64, 7, 2 ** 32 - 1, 3);
    assert.deepEqual(all, ref, 'threshold 2^32-1');
  });

  it('throws when n exceeds the mask', () => {
    assert.throws(() => nat().dropoutMask(new Float32Array(3), 4, 1, 0, 1), /dropoutMask: mask has 3/);
  });
});

describe('native cross entropy', () => {
  it('forward and backward agree with js, with ignored rows', () => {
    for (const [rows, V] of [[1, 1], [5, 7], [40, 1001]]) {
      const logits = rand(rows * V, -6, 6), targets = randIds(rows, V), ignore = -100;
      if (rows > 2) targets[1] = ignore;
      const le = new Float32Array(rows), lg = new Float32Array(rows), se = new Float32Array(rows), sg = new Float32Array(rows);
      const ce = js.crossEntropyForward(logits, targets, le, se, rows, V, ignore);
      const cg = nat().crossEntropyForward(logits, targets, lg, sg, rows, V, ignore);
      assert.equal(cg, ce, 'counted rows');
      assertClose(sg, se, ELEM_RTOL, ELEM_ATOL, `lse ${rows}x${V}`);
      assertClose(lg, le, 1e-5, 1e-5, `losses ${rows}x${V}`);
      const d0 = rand(rows * V), de = d0.slice(), dg = d0.slice();
      js.crossEntropyBackward(logits, targets, se, de, rows, V, ignore, 1 / ce);
      nat().crossEntropyBackward(logits, targets, sg, dg, rows, V, ignore, 1 / ce);
      assertClose(dg, de, ELEM_RTOL, 1e-6, `dLogits ${rows}x${V}`);
    }
  });

  it('throws on a bad target before writing', () => {
    const k = nat();
    const losses = new Float32Array(2).fill(9), lse = new Float32Array(2).fill(9);
    assert.throws(() => k.crossEntropyForward(rand(6), Int32Array.of(0, 3), losses, lse, 2, 3, -100), /crossEntropyForward: target 3 at row 1 is outside \[0, 3\)/);
    assert.deepEqual([...losses, ...lse], [9, 9, 9, 9]);
    const d = new Float32Array(6);
    assert.throws(() => k.crossEntropyBackward(rand(6), Int32Array.of(-5, 0), rand(2), d, 2, 3, -100, 1), /crossEntropyBackward: target -5 at row 0/);
    assert.ok(d.every((x) => x === 0));
    assert.throws(() => k.crossEntropyForward(rand(5), Int32Array.of(0, 1), losses, lse, 2, 3, -100), /logits has 5/);
  });
});

describe('native adamw', () => {
  it('agrees with js over several steps', () => {
    for (const n of [1, 33, 70_001]) {
      const pe = rand(n), pg = pe.slice(), me = new Float32Array(n), mg = new Float32Array(n);
      const ve = new Float32Array(n), vg = new Float32Array(n);
      const [lr, b1, b2, eps, wd] = [1e-3, 0.9, 0.999, 1e-8, 0.1];
      for (let step = 1; step <= 3; step++) {
        const grad = rand(n);
        const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
        const gradScale = step === 2 ? 0.37 : 1;
        js.adamwStep(pe, grad, me, ve, n, lr, b1, b2, eps, wd, bc1, bc2, gradScale);
        nat().adamwStep(pg, grad, mg, vg, n, lr, b1, b2, eps, wd, bc1, bc2, gradScale);
      }
      assertClose(pg, pe, ELEM_RTOL, ELEM_ATOL, `param n=${n}`);
      assertClose(mg, me, ELEM_RTOL, ELEM_ATOL, `m n=${n}`);
      assertClose(vg, ve, ELEM_RTOL, 1e-9, `v n=${n}`);
    }
  });

  it('with a gradient scale, takes exactly the step of the gradient scaled first (clipping folded in)', () => {
    const n = 70_001, scale = Math.fround(1 / 2.9);
    for (const k of [js, nat()]) {
      const p = rand(n), m = rand(n, -0.1, 0.1), v = rand(n, 0, 0.01), grad = rand(n, -5, 5);
      const [p2, m2, v2] = [p.slice(), m.slice(), v.slice()], scaled = new Float32Array(n);
      const args = [n, 1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - 0.9 ** 4, 1 - 0.999 ** 4] as const;
      k.scale(grad, scale, scaled, n);
      k.adamwStep(p, scaled, m, v, ...args, 1);
      const before = grad.slice();
      k.adamwStep(p2, grad, m2, v2, ...args, scale);
      assertClose(p2, p, 0, 0, `${k.name} param`);
      assertClose(m2, m, 0, 0, `${k.name} m`);
      assertClose(v2, v, 0, 0, `${k.name} v`);
      assert.deepEqual(grad, before, `${k.name} leaves the gradient as it is`);
    }
  });

  it('throws on short state', () => {
    assert.throws(() => nat().adamwStep(rand(4), rand(4), new Float32Array(4), new Float32Array(3), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001, 1), /adamwStep: v has 3/);
  });
});

describe('kernels the js backend composes from others', () => {
  it('dropoutApply and dropoutBackwardAdd equal the stored mask applied, on both backends', () => {
    for (const n of [1, 1000, 100_003]) {
      for (const p of [0.1, 0.5, 1 - 2 ** -33]) {
        const key = hash32(777, n), threshold = dropThreshold(p), scale = 1 / (1 - p);
        const x = rand(n), g = rand(n), dx0 = rand(n);
        const mask = new Float32Array(n);
        js.dropoutMask(mask, n, key, threshold, scale);
        const wantOut = x.map((v, i) => v * mask[i]), wantDx = dx0.map((v, i) => v + Math.fround(g[i] * mask[i]));
        for (const k of [js, nat()]) {
          const out = rand(n), dx = dx0.slice(), gIn = g.slice();
          k.dropoutApply(x, out, n, key, threshold, scale);
          k.dropoutBackwardAdd(gIn, dx, n, key, threshold, scale);
          assertClose(out, wantOut, 0, 0, `${k.name} dropoutApply n=${n} p=${p}`);
          assertClose(dx, wantDx, 0, 0, `${k.name} dropoutBackwardAdd n=${n} p=${p}`);
          assert.deepEqual(gIn, g, `${k.name} dropoutBackwardAdd leaves g alone`);
          // bf16: this backend's dropoutApply values, rounded as toBf16 rounds them, packed.
          const wantBf16 = new Float32Array((n + 1) >> 1), outBf16 = rand((n + 1) >> 1);
          js.toBf16(out, wantBf16, n);
          k.dropoutApplyBf16(x, outBf16, n, key, threshold, scale);
          assert.deepEqual(new Uint16Array(outBf16.buffer, 0, n), new Uint16Array(wantBf16.buffer, 0, n), `${k.name} dropoutApplyBf16 n=${n} p=${p}`);
        }
      }
    }
    for (const k of [js, nat()]) assert.throws(() => k.dropoutApplyBf16(rand(5), new Float32Array(2), 5, 1, 0, 1), /dropoutApplyBf16: out has 2 elements but ceil\(n\/2\) needs 3/);
  });

  it('crossEntropyBackwardWrite overwrites garbage, zeroes ignored rows, and works in place over the logits', () => {
    for (const [rows, V] of [[1, 1], [5, 7], [40, 1001]]) {
      const logits = rand(rows * V, -6, 6), targets = randIds(rows, V), ignore = -100;
      if (rows > 2) targets[1] = ignore;
      const lse = new Float32Array(rows);
      const count = js.crossEntropyForward(logits, targets, new Float32Array(rows), lse, rows, V, ignore);
      const want = new Float32Array(rows * V);
      js.crossEntropyBackward(logits, targets, lse, want, rows, V, ignore, 1 / count);
      for (const k of [js, nat()]) {
        const written = rand(rows * V, 50, 60);
        k.crossEntropyBackwardWrite(logits, targets, lse, written, rows, V, ignore, 1 / count);
        assertClose(written, want, ELEM_RTOL, 1e-6, `${k.name} written ${rows}x${V}`);
        const inPlace = logits.slice();
        k.crossEntropyBackwardWrite(inPlace, targets, lse, inPlace, rows, V, ignore, 1 / count);
        assertClose(inPlace, written, 0, 0, `${k.name} in place ${rows}x${V}`);
      }
    }
    assert.throws(() => nat().crossEntropyBackwardWrite(rand(6), Int32Array.of(0, 3), rand(2), new Float32Array(6), 2, 3, -100, 1), /crossEntropyBackwardWrite: target 3 at row 1/);
    assert.throws(() => js.crossEntropyBackwardWrite(rand(6), Int32Array.of(0, 3), rand(2), new Float32Array(6), 2, 3, -100, 1), /crossEntropyBackwardWrite: target 3 at row 1/);
  });

  it('crossEntropyFused writes what forward and backwardWrite write, bit for bit, in fp32 (in place); in bf16 their losses and a gradient within one bf16 step of theirs', () => {
    const bf16Grads = new Map<string, Float32Array>();
    for (const [rows, V] of [[1, 1], [3, 5], [40, 1001], [7, 40_000]]) {
      const logits = rand(rows * V, -6, 6), targets = randIds(rows, V), ignore = -100;
      if (rows > 2) targets[1] = ignore;
      // bf16: packed logits (as gemmBf16ToBf16 writes them); their fp32 values are exact.
      const n = rows * V, packedLogits = new Float32Array((n + 1) >> 1), widened = new Float32Array(n);
      js.toBf16(logits, packedLogits, n);
      widenBf16(packedLogits, widened, n);
      for (const k of [js, nat()]) {
        const reference = (x: Float32Array) => {
          const losses = new Float32Array(rows), lse = new Float32Array(rows);
          const count = k.crossEntropyForward(x, targets, losses, lse, rows, V, ignore);
          const grad = new Float32Array(n);
          k.crossEntropyBackwardWrite(x, targets, lse, grad, rows, V, ignore, 0.37 / count);
          return { count, losses, lse, grad };
        };
        const want = reference(logits), count = want.count;
        const fLosses = rand(rows, 9, 10), fLse = rand(rows, 9, 10), inPlace = logits.slice();
        assert.equal(k.crossEntropyFused(inPlace, targets, fLosses, fLse, inPlace, rows, V, ignore, 0.37 / count, false), count);
        assertClose(fLosses, want.losses, 0, 0, `${k.name} fp32 losses ${rows}x${V}`);
        assertClose(fLse, want.lse, 0, 0, `${k.name} fp32 lse ${rows}x${V}`);
        assertClose(inPlace, want.grad, 0, 0, `${k.name} fp32 gradient in place ${rows}x${V}`);

        // bf16: losses and lse are forward's on the widened logits; the gradient, computed from the
        // exps of each row's sum, is gradScale·(softmax − onehot) rounded once to bf16 — within one bf16
        // step (2^-7 relative, 8 significant bits) of the float64 value and of backwardWrite's, rounded.
        const wantBf16 = reference(widened), gs = Math.fround(0.37 / count), exact = new Float64Array(n);
        for (let r = 0; r < rows; r++) {
          if (targets[r] === ignore) continue;
          let max = -Infinity, s = 0;
          for (let j = 0; j < V; j++) max = Math.max(max, widened[r * V + j]);
          for (let j = 0; j < V; j++) s += Math.exp(widened[r * V + j] - max);
          for (let j = 0; j < V; j++) exact[r * V + j] = (gs * Math.exp(widened[r * V + j] - max)) / s - (j === targets[r] ? gs : 0);
        }
        const withinOneStep = (got: Float32Array, want: ArrayLike<number>, label: string) => {
          for (let i = 0; i < n; i++) {
            // Plus fp32's cancellation at the target (p − 1 where p is near 1), a few ulps of gs.
            const ok = Math.abs(got[i] - want[i]) <= 2 ** -7 * Math.max(Math.abs(got[i]), Math.abs(want[i])) + 2 ** -20 * gs;
            if (!ok) assert.fail(`${label}: element ${i} is ${got[i]}, expected ${want[i]}`);
          }
        };
        for (const where of ['apart', 'in place']) {
          const logitsIn = packedLogits.slice(), out = where === 'in place' ? logitsIn : rand((n + 1) >> 1, 50, 60);
          assert.equal(k.crossEntropyFused(logitsIn, targets, fLosses.fill(7), fLse.fill(7), out, rows, V, ignore, 0.37 / count, true), count);
          assertClose(fLosses, wantBf16.losses, 0, 0, `${k.name} bf16 losses ${rows}x${V} ${where}`);
          assertClose(fLse, wantBf16.lse, 0, 0, `${k.name} bf16 lse ${rows}x${V} ${where}`);
          const got = new Float32Array(n);
          widenBf16(out, got, n);
          withinOneStep(got, exact, `${k.name} bf16 gradient vs float64 ${rows}x${V} ${where}`);
          withinOneStep(got, wantBf16.grad, `${k.name} bf16 gradient vs backwardWrite ${rows}x${V} ${where}`);
          for (let r = 0; r < rows; r++) if (targets[r] === ignore) assert.ok(got.subarray(r * V, r * V + V).every((x) => x === 0), `${k.name} ignored row ${r} zeroed`);
          bf16Grads.set(`${k.name} ${rows}x${V} ${where}`, got);
        }
      }
    }
    // js and native: the same formula, exps ~1 ulp apart, so the same bf16 values but for rare neighbours.
    for (const [key, got] of bf16Grads) {
      if (!key.startsWith('js ')) continue;
      const other = bf16Grads.get(key.replace(/^js /, 'native '))!;
      let differ = 0;
      for (let i = 0; i < got.length; i++) {
        if (got[i] === other[i]) continue;
        differ++;
        assert.ok(Math.abs(got[i] - other[i]) <= 2 ** -7 * Math.abs(got[i]), `js vs native bf16 gradient ${key}: element ${i} ${got[i]} vs ${other[i]}`);
      }
      assert.ok(differ <= got.length / 100, `js vs native bf16 gradient ${key}: ${differ} of ${got.length} differ`);
    }
    for (const k of [js, nat()]) {
      assert.throws(() => k.crossEntropyFused(rand(6), Int32Array.of(0, 3), rand(2), rand(2), new Float32Array(6), 2, 3, -100, 1, false), /target 3 at row 1/);
      assert.throws(() => k.crossEntropyFused(rand(3), Int32Array.of(0, 1), rand(2), rand(2), new Float32Array(2), 2, 3, -100, 1, true), /dLogits/);
      assert.throws(() => k.crossEntropyFused(rand(2), Int32Array.of(0, 1), rand(2), rand(2), new Float32Array(3), 2, 3, -100, 1, true), /logits/);
    }
    const shared = rand(8);
    assert.throws(() => nat().crossEntropyFused(shared.subarray(1), Int32Array.of(0, 1), rand(2), rand(2), shared, 2, 4, -100, 1, true), /must be the logits themselves or not overlap/);
  });

  it('toBf16 rounds to nearest even and keeps NaN, bit-identically on both backends', () => {
    const bits = Uint32Array.of(
      0x3f800000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0xbf7fffff, 0x7f7fffff, 0x7f800000, 0xff800000,
      0x7f800001, 0xffc00000, 0x00000001, 0x80000000, 0x477fe000, 0x40490fdb,
    );
    const src = new Float32Array(bits.buffer);
    const n = src.length, want = [0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xbf80, 0x7f80, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x0000, 0x8000, 0x4780, 0x4049];
    for (const k of [js, nat()]) {
      const dst = new Float32Array((n + 1) >> 1);
      k.toBf16(src, dst, n);
      assert.deepEqual([...new Uint16Array(dst.buffer, 0, n)], want, `${k.name} toBf16`);
    }
    const big = rand(100_003), a = new Float32Array(50_002), b = new Float32Array(50_002);
    js.toBf16(big, a, big.length);
    nat().toBf16(big, b, big.length);
    assert.deepEqual(new Uint16Array(b.buffer), new Uint16Array(a.buffer), 'toBf16 on 100,003 values');
  });

  it('roundBf16 (the js emulation\'s rounding) keeps the fp32 values toBf16 rounds to, also in place', () => {
    const src = rand(100_003, -50, 50);
    new Uint32Array(src.buffer).set(Uint32Array.of(0x3f808000, 0x3f818000, 0x7f7fffff, 0x7f800001, 0xffc00000, 0x00000001));
    const packed = new Float32Array(50_002);
    js.toBf16(src, packed, src.length);
    const want = Uint32Array.from(new Uint16Array(packed.buffer, 0, src.length), (h) => h << 16);
    const dst = rand(src.length, 7, 8);
    roundBf16(src, dst, src.length);
    assert.deepEqual(new Uint32Array(dst.buffer), want, 'roundBf16');
    const inPlace = src.slice();
    roundBf16(inPlace, inPlace, src.length);
    assert.deepEqual(new Uint32Array(inPlace.buffer), want, 'roundBf16 in place');
    assert.throws(() => roundBf16(src, new Float32Array(3), 4), /roundBf16: .*dst/);
  });

  // Multiples of 1/8 in [-4, 4] are exact in bf16, and their products and sums (to 2¹⁴ terms) exact in fp32.
  const exactBf16Values = (n: number): Float32Array => rand(n, -4, 4).map((v) => Math.round(v * 8) / 8);
  const packBf16 = (x: Float32Array): Float32Array => {
    const p = new Float32Array((x.length + 1) >> 1);
    js.toBf16(x, p, x.length);
    return p;
  };

  it('gemmBf16 multiplies packed bf16 operands in every layout (exact on bf16-representable values)', () => {
    const native = nat();
    assert.equal(typeof native.hasBf16Gemm(), 'boolean');
    assert.equal(js.hasBf16Gemm(), false);
    for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [33, 17, 40]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const lda = (transA ? M : K) + 2, ldb = (transB ? K : N) + 1;
          const A = exactBf16Values((transA ? K : M) * lda), B = exactBf16Values((transB ? N : K) * ldb), C0 = exactBf16Values(M * N);
          const want = C0.slice();
          js.gemm(transA, transB, M, N, K, 1, A, lda, 0, B, ldb, 0, 0.5, want, N, 0, 1);
          for (const k of [js, native]) {
            const C = C0.slice();
            k.gemmBf16(transA, transB, M, N, K, 1, packBf16(A), lda, packBf16(B), ldb, 0.5, C, N);
            assertClose(C, want, 0, 0, `${k.name} gemmBf16 ${M}x${N}x${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
          }
        }
      }
    }
    assert.throws(() => native.gemmBf16(false, false, 4, 4, 4, 1, new Float32Array(2), 4, new Float32Array(8), 4, 0, new Float32Array(16), 4), /gemmBf16: A \(2 floats\)|gemmBf16: A has/);
  });

  it('gemmBf16 is exact on dense operands too, whichever oneDNN kernel the shape is steered to', () => {
    // Dense rows take oneDNN's brgemm unless the shape is one gemm:jit runs faster (gemm_bf16.c:
    // a transposed A accumulating or with K ≥ 1024, or K > N ≥ 256); each kind is here, with beta 0 and 1.
    const native = nat();
    for (const [M, N, K] of [[48, 272, 1040], [272, 40, 1024], [16, 256, 300], [40, 24, 64]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const beta of [0, 1]) {
            const A = exactBf16Values(M * K), B = exactBf16Values(K * N), C0 = exactBf16Values(M * N);
            const want = C0.slice();
            js.gemm(transA, transB, M, N, K, 1, A, transA ? M : K, 0, B, transB ? K : N, 0, beta, want, N, 0, 1);
            const C = C0.slice();
            native.gemmBf16(transA, transB, M, N, K, 1, packBf16(A), transA ? M : K, packBf16(B), transB ? K : N, beta, C, N);
            assertClose(C, want, 0, 0, `gemmBf16 ${M}x${N}x${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} beta ${beta}`);
          }
        }
      }
    }
  });

  it('gemmBf16ToBf16 writes the product rounded to bf16, leaving the gaps between C\'s rows alone', () => {
    const native = nat();
    for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [33, 17, 40], [64, 300, 96]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const lda = (transA ? M : K) + 2, ldb = (transB ? K : N) + 1, ldc = N + 3;
          const A = packBf16(rand((transA ? K : M) * lda, -3, 3)), B = packBf16(rand((transB ? N : K) * ldb, -3, 3));
          for (const k of [js, native]) {
            // The reference: the same backend's fp32 product, rounded.
            const full = new Float32Array(M * ldc);
            k.gemmBf16(transA, transB, M, N, K, 0.75, A, lda, B, ldb, 0, full, ldc);
            const want = new Float32Array((M * ldc + 1) >> 1);
            k.toBf16(full, want, M * ldc);
            const C = rand((M * ldc + 1) >> 1, 50, 60), before = new Uint16Array(C.slice().buffer);
            k.gemmBf16ToBf16(transA, transB, M, N, K, 0.75, A, lda, B, ldb, C, ldc);
            const got = new Uint16Array(C.buffer), wanted = new Uint16Array(want.buffer);
            const label = `${k.name} gemmBf16ToBf16 ${M}x${N}x${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
            for (let r = 0; r < M; r++) {
              for (let j = 0; j < ldc; j++) {
                const i = r * ldc + j;
                assert.equal(got[i], j < N ? wanted[i] : before[i], `${label} at ${r},${j}`);
              }
            }
          }
        }
      }
    }
    const zero = new Float32Array(8).fill(1);
    native.gemmBf16ToBf16(false, false, 4, 4, 0, 1, new Float32Array(0), 1, new Float32Array(0), 4, zero, 4);
    assert.deepEqual([...zero], new Array(8).fill(0), 'K = 0 writes zeros');
    assert.throws(() => native.gemmBf16ToBf16(false, false, 4, 4, 4, 1, new Float32Array(8), 4, new Float32Array(8), 4, new Float32Array(7), 4), /gemmBf16ToBf16: C has 7 floats, too few for 4×4 packed bf16/);
    assert.throws(() => js.gemmBf16ToBf16(false, false, 4, 4, 4, 1, new Float32Array(8), 4, new Float32Array(8), 4, new Float32Array(7), 4), /gemmBf16ToBf16: C has 7 floats, too few for 4×4 packed bf16/);
  });

  it('toBf16Rows rounds each row as toBf16 does, ld bf16 values apart, leaving the values between rows alone', () => {
    const native = nat();
    for (const [rows, cols, ld] of [[1, 1, 1], [3, 5, 5], [3, 5, 8], [7, 33, 64], [65, 1376, 1408], [0, 4, 6]]) {
      const src = rand(rows * cols, -3, 3);
      src[0] = NaN; // kept NaN, as toBf16 keeps it
      const want = new Float32Array((rows * cols + 1) >> 1);
      js.toBf16(src, want, rows * cols);
      const wanted = new Uint16Array(want.buffer);
      const span = rows === 0 ? 0 : (rows - 1) * ld + cols;
      for (const k of [js, native]) {
        const dst = rand((span + 1) >> 1, 60, 70), before = new Uint16Array(dst.slice().buffer), got = new Uint16Array(dst.buffer);
        k.toBf16Rows(src, dst, rows, cols, ld);
        for (let i = 0; i < span; i++) {
          const r = Math.floor(i / ld), c = i % ld;
          assert.equal(got[i], c < cols ? wanted[r * cols + c] : before[i], `${k.name} toBf16Rows ${rows}x${cols} ld ${ld} at ${r},${c}`);
        }
      }
    }
    for (const k of [js, native]) {
      assert.throws(() => k.toBf16Rows(new Float32Array(8), new Float32Array(8), 2, 4, 3), /toBf16Rows: ld = 3 is less than cols = 4/);
      assert.throws(() => k.toBf16Rows(new Float32Array(7), new Float32Array(8), 2, 4, 6), /toBf16Rows: src has 7/);
      assert.throws(() => k.toBf16Rows(new Float32Array(8), new Float32Array(4), 2, 4, 6), /toBf16Rows: dst has 4/);
    }
  });
});

describe('OpenMP wait policy', () => {
  it('sets GOMP_SPINCOUNT before the addon loads unless the user chose a wait policy', () => {
    const saved = { policy: process.env.OMP_WAIT_POLICY, spin: process.env.GOMP_SPINCOUNT };
    const restore = (name: 'OMP_WAIT_POLICY' | 'GOMP_SPINCOUNT', v: string | undefined) => {
      if (v === undefined) delete process.env[name];
      else process.env[name] = v;
    };
    try {
      for (const [policy, spin, want] of [
        [undefined, undefined, OPENMP_SPIN_COUNT], ['passive', undefined, undefined], [undefined, '7', '7'],
      ] as const) {
        restore('OMP_WAIT_POLICY', policy);
        restore('GOMP_SPINCOUNT', spin);
        setOpenMpWaitPolicy();
        assert.equal(process.env.GOMP_SPINCOUNT, want, `OMP_WAIT_POLICY=${policy} GOMP_SPINCOUNT=${spin}`);
      }
    } finally {
      restore('OMP_WAIT_POLICY', saved.policy);
      restore('GOMP_SPINCOUNT', saved.spin);
    }
  });
});
