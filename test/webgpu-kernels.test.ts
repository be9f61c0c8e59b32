/**
 * Every WebGPU kernel against the js backend (the reference) on random and odd shapes, on
 * whatever adapter Dawn finds — in CI the SwiftShader CPU driver of Debian's chromium package.
 * No adapter is a failure, never a skip. Tolerances (max |gpu − js| ≤ tol·(1 + max |js|)):
 * exact for dropout masks and pruning; 1e-6 for elementwise arithmetic; 2e-6·K for GEMM (fp32
 * sums of K products against js's float64 ones); 1e-5 for kernels with exp/log/sqrt and for
 * attention, RMSNorm and reductions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { jsKernels as js } from '../src/engine/backends/js.ts';
import { SWIFTSHADER_ICD } from '../src/engine/backends/webgpu/gpu.ts';
import type { GpuTensor } from '../src/engine/backends/webgpu/device.ts';
import { WebGpuKernels, type DeviceKernels } from '../src/engine/backends/webgpu/kernels.ts';
import { dropThreshold, hash32, RandomStream } from '../src/engine/rng.ts';

if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;

let gk: DeviceKernels;
const rng = new RandomStream(1234);

function rand(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  rng.uniform(a, lo, hi);
  return a;
}

function up(a: Float32Array | Int32Array): GpuTensor {
  return gk.gpu.upload(a);
}

async function down(t: GpuTensor): Promise<Float32Array> {
  return gk.gpu.readFloats(t);
}

function close(name: string, got: Float32Array, want: Float32Array, tol: number): void {
  assert.equal(got.length, want.length, `${name}: length`);
  let maxRef = 0, maxDiff = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= maxDiff)) {
      maxDiff = d;
      at = i;
    }
  }
  assert.ok(maxDiff <= tol * (1 + maxRef), `${name}: max |gpu - js| = ${maxDiff} at ${at} (gpu ${got[at]}, js ${want[at]}), tolerance ${tol * (1 + maxRef)}`);
}

before(async () => {
  gk = await WebGpuKernels.open();
});

after(async () => {
  await gk.gpu.check();
  gk.gpu.destroy();
});

describe('WebGPU kernels agree with the js backend', () => {
  it('finds an adapter (failing, not skipping, when there is none)', () => {
    assert.ok(gk.gpu.adapter.maxStorageBufferBindingSize > 0);
  });

  it('gemm: every transpose pair, odd shapes, leading dimensions, batch strides, broadcast, offsets, alpha/beta', async () => {
    const cases = [
      { M: 1, N: 1, K: 1, batch: 1 }, { M: 5, N: 7, K: 3, batch: 1 }, { M: 67, N: 65, K: 33, batch: 2 },
      { M: 3, N: 130, K: 17, batch: 3 }, { M: 70, N: 2, K: 0, batch: 1 },
    ];
    for (const { M, N, K, batch } of cases) {
      for (const tA of [false, true]) for (const tB of [false, true]) {
        const lda = (tA ? M : K) + 1, ldb = (tB ? K : N) + 2, ldc = N + 1;
        const aRows = tA ? K : M, bRows = tB ? N : K;
        const sA = aRows * lda, sB = batch > 1 && tB ? 0 : bRows * ldb, sC = M * ldc;
        const offA = 3, offC = 5;
        const A = rand(offA + batch * sA + 1), B = rand(batch * Math.max(sB, bRows * ldb) + 1), C0 = rand(offC + batch * sC);
        for (const [alpha, beta] of [[1, 0], [0.5, 1.5]]) {
          const want = C0.slice();
          js.gemm(tA, tB, M, N, K, alpha, A.subarray(offA), lda, sA, B, ldb, sB, beta, want.subarray(offC), ldc, sC, batch);
          const c = up(C0);
          gk.gemm(tA, tB, M, N, K, alpha, up(A), lda, sA, up(B), ldb, sB, beta, c, ldc, sC, batch, { a: offA, c: offC });
          close(`gemm M${M} N${N} K${K} b${batch} tA${tA} tB${tB} a${alpha} b${beta}`, await down(c), want, 2e-6 * Math.max(1, K));
        }
      }
    }
  });

  it('gemm with beta 0 does not read C (NaN does not propagate)', async () => {
    const c = up(new Float32Array(4).fill(NaN));
    gk.gemm(false, false, 2, 2, 1, 1, up(Float32Array.from([1, 2])), 1, 0, up(Float32Array.from([3, 4])), 2, 0, 0, c, 2, 0, 1);
    assert.deepEqual([...(await down(c))], [3, 4, 6, 8]);
  });

  it('elementwise arithmetic, fill and reductions', async () => {
    const n = 1031;
    const a = rand(n), b = rand(n), y0 = rand(n);
    const out = gk.gpu.alloc(n);
    const check = async (name: string, run: (o: GpuTensor) => void, ref: (o: Float32Array) => void, init = y0): Promise<void> => {
      const want = init.slice();
      ref(want);
      gk.gpu.write(out, init);
      run(out);
      close(name, await down(out), want, 1e-6);
    };
    const ga = up(a), gb = up(b);
    await check('add', (o) => gk.add(ga, gb, o, n), (o) => js.add(a, b, o, n));
    await check('mul', (o) => gk.mul(ga, gb, o, n), (o) => js.mul(a, b, o, n));
    await check('scale', (o) => gk.scale(ga, -0.75, o, n), (o) => js.scale(a, -0.75, o, n));
    await check('axpy', (o) => gk.axpy(0.3, ga, o, n), (o) => js.axpy(0.3, a, o, n));
    await check('addScalar', (o) => gk.addScalar(o, 2.5, n - 3), (o) => js.addScalar(o, 2.5, n - 3));
    await check('fill (a prefix)', (o) => gk.fill(o, 7, 100), (o) => js.fill(o, 7, 100));
    await check('scale in place (aliased input and output)', (o) => gk.scale(o, 3, o, n), (o) => js.scale(o, 3, o, n));
    const sums = gk.gpu.zeros(4);
    gk.sumInto(ga, n, sums, 1);
    gk.sumSquaresInto(ga, n - 1, sums, 3);
    const s = await down(sums);
    close('sum', s.subarray(1, 2), Float32Array.of(js.sum(a, n)), 1e-5);
    close('sumSquares', s.subarray(3, 4), Float32Array.of(js.sumSquares(a, n - 1)), 1e-5);
    assert.equal(s[0], 0);
  });

  it('embedding forward and backward (repeated ids), ids checked on upload', async () => {
    const vocab = 11, dim = 9, nIds = 23;
    const ids = Int32Array.from({ length: nIds }, (_, i) => (i * 7) % vocab);
    ids[5] = ids[6] = 3;
    const W = rand(vocab * dim), g = rand(nIds * dim), dW0 = rand(vocab * dim);
    const want = new Float32Array(nIds * dim);
    js.embeddingForward(W, ids, want, nIds, vocab, dim);
    const gIds = gk.uploadIds(ids, vocab, 'embedding');
    const out = gk.gpu.alloc(nIds * dim);
    gk.embeddingForward(up(W), gIds, out, nIds, vocab, dim);
    close('embeddingForward', await down(out), want, 0);
    const dW = dW0.slice();
    js.embeddingBackward(g, ids, dW, nIds, vocab, dim);
    const gdW = up(dW0);
    gk.embeddingBackward(up(g), gIds, gdW, nIds, vocab, dim);
    close('embeddingBackward', await down(gdW), dW, 1e-6);
    assert.throws(() => gk.uploadIds(Int32Array.of(0, vocab), vocab, 'embedding'), /id 11 at position 1 is outside \[0, 11\)/);
  });

  it('RMSNorm forward and backward (dx and dWeight, each alone)', async () => {
    const rows = 13, dim = 37;
    const x = rand(rows * dim), wt = rand(dim, 0.5, 1.5), g = rand(rows * dim);
    const out = new Float32Array(rows * dim), rstd = new Float32Array(rows);
    js.rmsnormForward(x, wt, out, rstd, rows, dim, 1e-6);
    const gx = up(x), gw = up(wt), gout = gk.gpu.alloc(rows * dim), grstd = gk.gpu.alloc(rows);
    gk.rmsnormForward(gx, gw, gout, grstd, rows, dim, 1e-6);
    close('rmsnorm out', await down(gout), out, 1e-5);
    close('rmsnorm rstd', await down(grstd), rstd, 1e-5);
    for (const [wantDx, wantDw] of [[true, true], [true, false], [false, true]]) {
      const dx0 = rand(rows * dim), dw0 = rand(dim);
      const dx = dx0.slice(), dw = dw0.slice();
      js.rmsnormBackward(g, x, wt, rstd, wantDx ? dx : null, wantDw ? dw : null, rows, dim);
      const gdx = up(dx0), gdw = up(dw0);
      gk.rmsnormBackward(up(g), gx, gw, grstd, wantDx ? gdx : null, wantDw ? gdw : null, rows, dim);
      close(`rmsnorm dx (${wantDx})`, await down(gdx), dx, 1e-5);
      close(`rmsnorm dWeight (${wantDw})`, await down(gdw), dw, 1e-5);
    }
  });

  it('RoPE forward and backward', async () => {
    const B = 2, T = 5, H = 3, D = 6, n = B * T * H * D;
    const x = rand(n), cos = rand(T * D / 2), sin = rand(T * D / 2), dx0 = rand(n);
    const out = new Float32Array(n);
    js.ropeForward(x, cos, sin, out, B, T, H, D);
    const go = gk.gpu.alloc(n), gc = up(cos), gs = up(sin);
    gk.ropeForward(up(x), gc, gs, go, B, T, H, D);
    close('ropeForward', await down(go), out, 1e-6);
    const dx = dx0.slice();
    js.ropeBackward(x, cos, sin, dx, B, T, H, D);
    const gdx = up(dx0);
    gk.ropeBackward(up(x), gc, gs, gdx, B, T, H, D);
    close('ropeBackward', await down(gdx), dx, 1e-6);
    assert.throws(() => gk.ropeForward(go, gc, gs, go, 1, 1, 1, 3), /head dimension 3 must be even/);
  });

  it('causal attention forward and backward (every subset of dq, dk, dv)', async () => {
    const B = 2, T = 7, H = 2, D = 5, n = B * T * H * D, scale = 1 / Math.sqrt(D);
    const q = rand(n), k = rand(n), v = rand(n), g = rand(n);
    const out = new Float32Array(n), probs = new Float32Array(B * H * T * T);
    js.attentionForward(q, k, v, out, probs, B, T, H, D, scale);
    const gq = up(q), gkk = up(k), gv = up(v), gout = gk.gpu.alloc(n), gprobs = up(rand(B * H * T * T));
    gk.attentionForward(gq, gkk, gv, gout, gprobs, B, T, H, D, scale);
    close('attention out', await down(gout), out, 1e-5);
    close('attention probs', await down(gprobs), probs, 1e-5);
    for (const mask of [7, 1, 2, 4, 6]) {
      const init = [rand(n), rand(n), rand(n)];
      const want = init.map((a, i) => ((mask >> i) & 1 ? a.slice() : null));
      js.attentionBackward(g, q, k, v, probs, want[0], want[1], want[2], B, T, H, D, scale);
      const got = init.map((a, i) => ((mask >> i) & 1 ? up(a) : null));
      gk.attentionBackward(up(g), gq, gkk, gv, gprobs, got[0], got[1], got[2], B, T, H, D, scale);
      for (let i = 0; i < 3; i++) if (got[i]) close(`attention d${'qkv'[i]} (mask ${mask})`, await down(got[i]!), want[i]!, 1e-5);
    }
  });

  it('SiLU and SwiGLU forward and backward', async () => {
    const n = 517;
    const x = rand(n, -6, 6), u = rand(n), g = rand(n), d0 = rand(n), d1 = rand(n);
    const out = new Float32Array(n), gout = gk.gpu.alloc(n), gx = up(x), gu = up(u), gg = up(g);
    js.siluForward(x, out, n);
    gk.siluForward(gx, gout, n);
    close('silu', await down(gout), out, 1e-5);
    const dx = d0.slice(), gdx = up(d0);
    js.siluBackward(g, x, dx, n);
    gk.siluBackward(gg, gx, gdx, n);
    close('siluBackward', await down(gdx), dx, 1e-5);
    js.swigluForward(x, u, out, n);
    gk.swigluForward(gx, gu, gout, n);
    close('swiglu', await down(gout), out, 1e-5);
    for (const [wg, wu] of [[true, true], [true, false], [false, true]]) {
      for (const accumulate of [true, false]) {
        const dg = d0.slice(), du = d1.slice(), gdg = up(d0), gdu = up(d1);
        js.swigluBackward(g, x, u, wg ? dg : null, wu ? du : null, n, accumulate);
        gk.swigluBackward(gg, gx, gu, wg ? gdg : null, wu ? gdu : null, n, accumulate);
        close(`swigluBackward dGate (accumulate ${accumulate})`, await down(gdg), dg, 1e-5);
        close(`swigluBackward dUp (accumulate ${accumulate})`, await down(gdu), du, 1e-5);
      }
    }
  });

  it('dropout: the very masks of the CPU backends (hash32), apply and backward', async () => {
    const n = 4099;
    for (const p of [0, 0.1, 0.5, 0.999]) {
      const key = hash32(77, Math.round(p * 1000)), thr = dropThreshold(p), s = 1 / (1 - p);
      const want = new Float32Array(n), gm = gk.gpu.alloc(n);
      js.dropoutMask(want, n, key, thr, s);
      gk.dropoutMask(gm, n, key, thr, s);
      close(`dropoutMask p=${p}`, await down(gm), want, 0);
      const x = rand(n), dx0 = rand(n), o = new Float32Array(n), go = gk.gpu.alloc(n);
      js.dropoutApply(x, o, n, key, thr, s);
      gk.dropoutApply(up(x), go, n, key, thr, s);
      close(`dropoutApply p=${p}`, await down(go), o, 1e-6);
      const dx = dx0.slice(), gdx = up(dx0);
      js.dropoutBackwardAdd(x, dx, n, key, thr, s);
      gk.dropoutBackwardAdd(up(x), gdx, n, key, thr, s);
      close(`dropoutBackwardAdd p=${p}`, await down(gdx), dx, 1e-6);
    }
  });

  it('cross-entropy forward, backward (accumulate) and backward written over the logits, with ignored rows', async () => {
    const rows = 9, V = 37, ignore = -100;
    const logits = rand(rows * V, -4, 4);
    const targets = Int32Array.from({ length: rows }, (_, i) => (i * 5) % V);
    targets[2] = ignore;
    const losses = new Float32Array(rows), lse = new Float32Array(rows);
    js.crossEntropyForward(logits, targets, losses, lse, rows, V, ignore);
    const gl = up(logits), gt = gk.uploadIds(targets, V, 'targets', ignore), glosses = gk.gpu.alloc(rows), glse = gk.gpu.alloc(rows);
    gk.crossEntropyForward(gl, gt, glosses, glse, rows, V, ignore);
    close('crossEntropy losses', await down(glosses), losses, 1e-5);
    close('crossEntropy lse', await down(glse), lse, 1e-5);
    const d0 = rand(rows * V), d = d0.slice(), gd = up(d0);
    js.crossEntropyBackward(logits, targets, lse, d, rows, V, ignore, 0.25);
    gk.crossEntropyBackward(gl, gt, glse, gd, rows, V, ignore, 0.25);
    close('crossEntropyBackward', await down(gd), d, 1e-5);
    const dw = logits.slice();
    js.crossEntropyBackwardWrite(dw, targets, lse, dw, rows, V, ignore, 0.25);
    gk.crossEntropyBackwardWrite(gl, gt, glse, gl, rows, V, ignore, 0.25);
    close('crossEntropyBackwardWrite in place', await down(gl), dw, 1e-5);
    assert.throws(() => gk.uploadIds(Int32Array.of(V), V, 'targets', ignore), /id 37 at position 0/);
  });

  it('AdamW step (clipping factor included), sums of squares into slots and the reset pruning', async () => {
    const n = 333;
    const p = rand(n), g = rand(n), m = rand(n, -0.1, 0.1), v = rand(n, 0, 0.01);
    const args = [1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - 0.9 ** 3, 1 - 0.999 ** 3, 0.6] as const;
    const gp = up(p), gm = up(m), gv = up(v);
    js.adamwStep(p, g, m, v, n, ...args);
    gk.adamwStep(gp, up(g), gm, gv, n, ...args);
    close('adamw param', await down(gp), p, 1e-6);
    close('adamw m', await down(gm), m, 1e-6);
    close('adamw v', await down(gv), v, 1e-6);

    const a = rand(n, -3, 3), b = rand(50, -3, 3);
    const parts = gk.gpu.alloc(2), ga = up(a), gb = up(b);
    gk.sumSquaresInto(ga, n, parts, 0);
    gk.sumSquaresInto(gb, 50, parts, 1);
    close('sumSquaresInto', await down(parts), Float32Array.of(js.sumSquares(a, n), js.sumSquares(b, 50)), 1e-5);

    for (const ratio of [0, 0.5, 0.999]) {
      const x = rand(n), stream = new RandomStream(9), u = new Float32Array(n);
      const key = new RandomStream(9).nextKey();
      stream.uniform(u); // what src/relora/prune.ts draws
      const want = x.map((xi, i) => (u[i] > ratio ? xi : 0));
      const gx = up(x);
      gk.pruneRandom(gx, n, key, ratio);
      close(`pruneRandom ${ratio}`, await down(gx), want, 0);
    }
  });

  it('refuses out-of-bounds sizes before recording anything', () => {
    const small = gk.gpu.alloc(3);
    assert.throws(() => gk.add(small, small, small, 4), /add: a has 3 elements, needs at least 4/);
    assert.throws(() => gk.gemm(false, false, 2, 2, 2, 1, small, 2, 0, small, 2, 0, 0, small, 2, 0, 1), /gemm: A has 3 elements, needs at least 4/);
  });
});
