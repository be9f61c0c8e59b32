/**
 * Attention in bf16 mixed precision (Kernels.attentionForwardBf16 / attentionBackwardBf16): the js
 * kernels equal a plain per-element evaluation of the contract (q, k, v, P, the upstream gradient
 * and dS rounded to bf16 where they enter a product, softmax and its gradient in fp32; the
 * backward's P computed again from each row's stats, which hold the row's max and 1/sum); native
 * (oneDNN on AMX / AVX512-BF16, or its emulation) agrees with js far closer than bf16 differs from
 * fp32; `saved` holds toBf16's rounding of q, k, v head-major; bad sizes are refused by name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { setBackend } from '../src/engine/backend.ts';
import { toBf16Packed } from '../src/engine/backends/bf16.ts';
import { jsKernels as js } from '../src/engine/backends/js.ts';
import type { Kernels } from '../src/engine/backends/kernels.ts';
import { loadNativeKernels, nativeLoadError } from '../src/engine/backends/native.ts';
import * as ops from '../src/engine/ops/index.ts';
import { withPrecision } from '../src/engine/ops/precision.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { scope, type Tensor } from '../src/engine/tensor.ts';
import { maxRelDiff, param } from './engine-helpers.ts';

function rand(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  new RandomStream(seed).uniform(out, -scale, scale);
  return out;
}

/** The value x stands for as a bf16 operand (toBf16's rounding, widened back). */
function bf(x: number): number {
  const one = new Float32Array([x]), packed = new Float32Array(1);
  toBf16Packed(one, packed, 1);
  return new Float32Array(new Uint32Array([new Uint16Array(packed.buffer)[0] << 16]).buffer)[0];
}

/** The contract evaluated element by element in float64, no GEMM, no repacking. */
function reference(q: Float32Array, k: Float32Array, v: Float32Array, g: Float32Array, B: number, T: number, H: number, D: number) {
  const scale = 1 / Math.sqrt(D), at = (b: number, t: number, h: number) => ((b * T + t) * H + h) * D;
  const n = B * T * H * D, out = new Float64Array(n), dq = new Float64Array(n), dk = new Float64Array(n), dv = new Float64Array(n);
  const probs = new Float64Array(B * H * T * T), stats = new Float64Array(B * H * T * 2);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const P = (t: number, s: number) => probs[((b * H + h) * T + t) * T + s];
    for (let t = 0; t < T; t++) {
      const z: number[] = [];
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += bf(q[at(b, t, h) + d]) * bf(k[at(b, s, h) + d]);
        z.push(Math.fround(dot * scale));
      }
      const max = Math.max(...z), e = z.map((x) => Math.exp(x - max)), sum = e.reduce((a, c) => a + c, 0);
      stats.set([max, 1 / sum], ((b * H + h) * T + t) * 2);
      e.forEach((x, s) => (probs[((b * H + h) * T + t) * T + s] = Math.fround(x / sum)));
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let s = 0; s <= t; s++) acc += bf(P(t, s)) * bf(v[at(b, s, h) + d]);
        out[at(b, t, h) + d] = acc;
      }
    }
    for (let t = 0; t < T; t++) {
      const dP: number[] = [];
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += bf(g[at(b, t, h) + d]) * bf(v[at(b, s, h) + d]);
        dP.push(Math.fround(dot));
      }
      const rowDot = Math.fround(dP.reduce((a, x, s) => a + x * P(t, s), 0));
      for (let s = 0; s <= t; s++) {
        const dS = bf(Math.fround(P(t, s) * (dP[s] - rowDot) * scale));
        for (let d = 0; d < D; d++) {
          dv[at(b, s, h) + d] += bf(P(t, s)) * bf(g[at(b, t, h) + d]);
          dq[at(b, t, h) + d] += dS * bf(k[at(b, s, h) + d]);
          dk[at(b, s, h) + d] += dS * bf(q[at(b, t, h) + d]);
        }
      }
    }
  }
  return { out, stats, dq, dk, dv };
}

function run(kern: Kernels, q: Float32Array, k: Float32Array, v: Float32Array, g: Float32Array, B: number, T: number, H: number, D: number, want = [true, true, true]) {
  const n = B * T * H * D, out = new Float32Array(n), stats = new Float32Array(B * H * T * 2), saved = new Float32Array(Math.ceil((3 * n) / 2));
  kern.attentionForwardBf16(q, k, v, out, stats, saved, B, T, H, D, 1 / Math.sqrt(D));
  // Gradients start non-zero: the kernel accumulates.
  const [dq, dk, dv] = want.map((w, i) => (w ? rand(n, 90 + i, 0.01) : null));
  const before = [dq, dk, dv].map((a) => a && Float32Array.from(a));
  kern.attentionBackwardBf16(g, saved, stats, dq, dk, dv, B, T, H, D, 1 / Math.sqrt(D), true);
  const added = [dq, dk, dv].map((a, i) => a && a.map((x, j) => x - before[i]![j]));
  // Written instead: whatever the buffers held (NaN here) is gone, and the values are the ones added.
  const written = want.map((w) => (w ? new Float32Array(n).fill(NaN) : null));
  kern.attentionBackwardBf16(g, saved, stats, written[0], written[1], written[2], B, T, H, D, 1 / Math.sqrt(D), false);
  written.forEach((w, i) => {
    if (w) assert.ok(maxRelDiff(w, added[i]!) < 1e-5 && w.every(Number.isFinite), `${kern.name}: written ${['dq', 'dk', 'dv'][i]} ${maxRelDiff(w, added[i]!)} from the added one`);
  });
  return { out, stats, saved, dq: added[0], dk: added[1], dv: added[2] };
}

const SHAPES: [number, number, number, number][] = [[2, 5, 2, 4], [1, 3, 1, 3], [1, 1, 1, 2], [2, 17, 3, 8]];

test('js bf16 attention equals the contract evaluated element by element', () => {
  for (const [B, T, H, D] of SHAPES) {
    const n = B * T * H * D, q = rand(n, 1), k = rand(n, 2), v = rand(n, 3), g = rand(n, 4);
    const got = run(js, q, k, v, g, B, T, H, D), want = reference(q, k, v, g, B, T, H, D);
    const label = `[${B}, ${T}, ${H}, ${D}]`;
    for (const name of ['out', 'stats', 'dq', 'dk', 'dv'] as const) {
      const diff = maxRelDiff(got[name]!, Float32Array.from(want[name]));
      assert.ok(diff < 1e-5, `${name} ${label}: ${diff}`);
    }
    // saved: toBf16 of q, k, v, head-major.
    const head = new Float32Array(3 * n);
    [q, k, v].forEach((x, i) => {
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
        head.set(x.subarray(((b * T + t) * H + h) * D, ((b * T + t) * H + h + 1) * D), i * n + ((b * H + h) * T + t) * D);
      }
    });
    const packed = new Float32Array(Math.ceil((3 * n) / 2));
    toBf16Packed(head, packed, 3 * n);
    assert.deepEqual(new Uint16Array(got.saved.buffer, 0, 3 * n), new Uint16Array(packed.buffer, 0, 3 * n), `saved ${label}`);
  }
});

test('native bf16 attention agrees with js, and both differ from fp32 by more', () => {
  const nat = loadNativeKernels();
  if (!nat) assert.fail(`native addon not available: ${nativeLoadError()}`);
  for (const [B, T, H, D] of [...SHAPES, [2, 64, 4, 16], [1, 256, 2, 64]] as [number, number, number, number][]) {
    const n = B * T * H * D, q = rand(n, 11, 2), k = rand(n, 12, 2), v = rand(n, 13), g = rand(n, 14);
    const label = `[${B}, ${T}, ${H}, ${D}]`;
    for (const want of [[true, true, true], [false, true, false], [true, false, false], [false, false, true]]) {
      const a = run(nat, q, k, v, g, B, T, H, D, want), e = run(js, q, k, v, g, B, T, H, D, want);
      assert.deepEqual(new Uint16Array(a.saved.buffer, 0, 3 * n), new Uint16Array(e.saved.buffer, 0, 3 * n), `saved ${label}`);
      for (const name of ['out', 'stats'] as const) assert.ok(maxRelDiff(a[name], e[name]) < 1e-5, `${name} ${label}: ${maxRelDiff(a[name], e[name])}`);
      (['dq', 'dk', 'dv'] as const).forEach((name, i) => {
        assert.equal(a[name] === null, !want[i], `${name} ${label}: computed only when asked for`);
        // A product's operand that lands next to a bf16 rounding boundary may round one step apart.
        if (a[name]) assert.ok(maxRelDiff(a[name]!, e[name]!) < 2e-3, `${name} ${label} mask ${want}: ${maxRelDiff(a[name]!, e[name]!)}`);
      });
    }
    if (T < 64) continue;
    // bf16 is not fp32: the same inputs through the fp32 kernels land measurably apart.
    const a = run(nat, q, k, v, g, B, T, H, D), out = new Float32Array(n), probs = new Float32Array(B * H * T * T);
    const dq = new Float32Array(n), dk = new Float32Array(n), dv = new Float32Array(n);
    js.attentionForward(q, k, v, out, probs, B, T, H, D, 1 / Math.sqrt(D));
    js.attentionBackward(g, q, k, v, probs, dq, dk, dv, B, T, H, D, 1 / Math.sqrt(D));
    const e = run(js, q, k, v, g, B, T, H, D);
    for (const [name, fp32] of [['out', out], ['dq', dq], ['dk', dk], ['dv', dv]] as const) {
      const bf16VsFp32 = maxRelDiff(a[name]!, fp32), jsVsNative = maxRelDiff(a[name]!, e[name]!);
      assert.ok(bf16VsFp32 > 1e-3 && bf16VsFp32 < 5e-2, `${name} ${label}: bf16 vs fp32 ${bf16VsFp32}`);
      assert.ok(jsVsNative < bf16VsFp32 / 4, `${name} ${label}: js vs native ${jsVsNative}, bf16 vs fp32 ${bf16VsFp32}`);
    }
  }
});

test('bf16 attention refuses arrays that are too small, naming them', () => {
  const kernels = [js, loadNativeKernels()].filter((k): k is Kernels => k !== null);
  assert.equal(kernels.length, 2, `native addon not available: ${nativeLoadError()}`);
  const n = 2 * 3 * 1 * 4, q = rand(n, 1), p = new Float32Array(12);
  for (const k of kernels) {
    assert.throws(() => k.attentionForwardBf16(q, q, q, new Float32Array(n), p, new Float32Array(17), 2, 3, 1, 4, 0.5), /attentionForwardBf16: saved has 17 .*36/);
    assert.throws(() => k.attentionForwardBf16(q, q.subarray(1), q, new Float32Array(n), p, new Float32Array(36), 2, 3, 1, 4, 0.5), /attentionForwardBf16: k has 23/);
    assert.throws(() => k.attentionBackwardBf16(q, new Float32Array(36), p.subarray(1), null, null, q, 2, 3, 1, 4, 0.5, true), /attentionBackwardBf16: stats has 11/);
    assert.throws(() => k.attentionBackwardBf16(q, new Float32Array(36), p, new Float32Array(3), null, null, 2, 3, 1, 4, 0.5, false), /attentionBackwardBf16: dq has 3/);
  }
});

test('bf16 attention op: fresh gradients are written, and a tensor used as q, k and v gets their sum', () => {
  for (const backend of ['js', 'native'] as const) {
    setBackend(backend);
    const [B, T, H, D] = [2, 9, 2, 4];
    const x = param([B, T, H * D], 31);
    const gradsOf = (inputs: Tensor[]) => withPrecision('bf16', () => {
      scope(() => ops.sum(ops.mul(ops.causalAttention(inputs[0], inputs[1], inputs[2], H), param([B, T, H * D], 32, false))).backward());
      return inputs.map((t) => Float32Array.from(t.grad!.data));
    });
    const copies = [0, 1, 2].map(() => param([B, T, H * D], 31));
    const separate = gradsOf(copies);
    const [shared] = gradsOf([x, x, x]);
    const sum = separate[0].map((v, i) => v + separate[1][i] + separate[2][i]);
    assert.ok(maxRelDiff(shared, sum) < 1e-6, `${backend}: gradient of a tensor used three times ${maxRelDiff(shared, sum)} from the sum of the three`);
    assert.ok(separate.every((g) => g.every(Number.isFinite) && g.some((v) => v !== 0)), `${backend}: written gradients`);
    for (const t of [x, ...copies]) t.dispose();
  }
  setBackend('native');
});
