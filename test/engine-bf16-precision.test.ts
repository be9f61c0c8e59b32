/**
 * bf16 mixed precision (`precision: bf16`, src/engine/ops/precision.ts): every product takes
 * bfloat16 operands with fp32 accumulation, as PyTorch's CPU autocast does.
 *
 * - Against PyTorch: the tiny parity model's loss and every gradient next to one
 *   forward/backward under torch.autocast("cpu", bfloat16) (test/fixtures/parity_bf16.safetensors,
 *   tools/reference/make_bf16_fixtures.py). Stated tolerance: the loss within 1e-4 relative;
 *   each gradient within 3e-2 of autocast's (bf16 keeps 8 significant bits, 2^-8 ≈ 4e-3 per
 *   rounding, a few roundings deep), and no further from the float64 gradient than 2× autocast's
 *   own distance to it — while fp32 stays within 1e-5 of float64, so the rounding really happens.
 * - js and native agree: the js backend emulates the rounding of the native AMX / AVX512-BF16
 *   kernels, so a LoRA-wrapped model (dropout on, every product bf16) gives the same loss and
 *   gradients on both, far closer than bf16 is to fp32.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { roundBf16 } from '../src/engine/backends/bf16.ts';
import { loadNativeKernels, nativeBf16Isa } from '../src/engine/backends/native.ts';
import { bf16Copy, bf16RowsCopy, bf16Support, mixedGemm } from '../src/engine/ops/bf16.ts';
import * as ops from '../src/engine/ops/index.ts';
import { matmulPrecision, setMatmulPrecision, withPrecision, type Precision } from '../src/engine/ops/precision.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { scope, Tensor } from '../src/engine/tensor.ts';
import { loraStreams, wrapWithLora } from '../src/relora/wrap.ts';
import { maxRelDiff, param } from './engine-helpers.ts';
import { openFixture, parityModel, relError } from './parity-helpers.ts';

const backends = loadNativeKernels() ? (['js', 'native'] as const) : (['js'] as const);
const ids = Tensor.from(openFixture('parity_forward.safetensors').readInt32('input_ids'), [2, 16]);

/** Loss and every parameter gradient (by name) of one forward/backward in precision p. */
function lossAndGrads(p: Precision, lora: boolean): { loss: number; grads: Map<string, Float32Array> } {
  const model = parityModel();
  model.train();
  if (lora) {
    const wrapped = wrapWithLora(model, { rank: 4, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, loraStreams(3));
    // B starts at zero; random B makes every product of the branch count.
    for (const l of wrapped.values()) new RandomStream(5).uniform(l.loraB.data, -0.05, 0.05);
  }
  const loss = withPrecision(p, () => scope(() => {
    const l = model.loss(ids);
    l.backward();
    return l.item();
  }));
  const grads = new Map<string, Float32Array>();
  for (const [name, t] of model.namedParameters()) if (t.grad) grads.set(name, Float32Array.from(t.grad.data));
  model.dispose();
  return { loss, grads };
}

for (const backend of backends) {
  test(`bf16 loss and gradients match PyTorch autocast bf16 on the tiny model (${backend})`, () => {
    setBackend(backend);
    const fx = openFixture('parity_bf16.safetensors');
    const ref = fx.readFloat32('bf16.loss')[0];
    const bf16 = lossAndGrads('bf16', false), fp32 = lossAndGrads('fp32', false);
    assert.ok(Math.abs(bf16.loss - ref) / ref < 1e-4, `loss ${bf16.loss} vs autocast ${ref}`);
    let worstOurs = 0, checked = 0;
    for (const [name, g] of bf16.grads) {
      const torchBf16 = fx.readFloat32(`bf16.grad.${name}`), exact = fx.readFloat32(`fp64.grad.${name}`);
      const vsAutocast = relError(g, torchBf16), ours = relError(g, exact), theirs = relError(torchBf16, exact);
      assert.ok(vsAutocast < 3e-2, `gradient of ${name}: ${vsAutocast} from autocast's`);
      assert.ok(ours <= 2 * theirs + 1e-4, `gradient of ${name}: ${ours} from float64, autocast ${theirs}`);
      assert.ok(relError(fp32.grads.get(name)!, exact) < 1e-5, `fp32 gradient of ${name}`);
      worstOurs = Math.max(worstOurs, ours);
      checked++;
    }
    assert.equal(checked, fx.names().filter((n) => n.startsWith('bf16.grad.')).length);
    assert.ok(worstOurs > 1e-3, `bf16 gradients are within ${worstOurs} of float64: the products were not rounded`);
  });
}

test('js emulates the native bf16 kernels: LoRA model with dropout, same loss and gradients', { skip: backends.length < 2 ? 'native addon not built' : false }, () => {
  const run = (b: 'js' | 'native', p: Precision) => {
    setBackend(b);
    return lossAndGrads(p, true);
  };
  const js = run('js', 'bf16'), native = run('native', 'bf16'), fp32 = run('native', 'fp32');
  assert.ok(Math.abs(js.loss - native.loss) / native.loss < 1e-6, `loss js ${js.loss} native ${native.loss}`);
  assert.notEqual(native.loss, fp32.loss);
  assert.equal(native.grads.size, js.grads.size);
  assert.ok([...native.grads.keys()].some((n) => /lora_?A/i.test(n)), [...native.grads.keys()].join(', '));
  for (const [name, g] of native.grads) {
    const jsVsNative = maxRelDiff(js.grads.get(name)!, g), bf16VsFp32 = maxRelDiff(g, fp32.grads.get(name)!);
    assert.ok(jsVsNative < 1e-3, `gradient of ${name}: js vs native ${jsVsNative}`);
    assert.ok(jsVsNative < bf16VsFp32 / 4, `gradient of ${name}: js vs native ${jsVsNative}, bf16 vs fp32 ${bf16VsFp32}`);
  }
});

for (const backend of backends) {
  test(`batched matmul in bf16 equals the product of the rounded operands (${backend})`, () => {
    setBackend(backend);
    const a = param([3, 5, 7], 21), b = param([3, 4, 7], 22);
    const y = withPrecision('bf16', () => scope(() => Float32Array.from(ops.matmul(a, b, { transB: true }).data)));
    const exact = scope(() => Float32Array.from(ops.matmul(a, b, { transB: true }).data));
    const rounded = (t: Tensor) => {
      const r = new Float32Array(t.size);
      roundBf16(t.data, r, t.size);
      return Tensor.from(r, t.shape);
    };
    const ar = rounded(a), br = rounded(b);
    const emulated = scope(() => Float32Array.from(ops.matmul(ar, br, { transB: true }).data));
    assert.ok(maxRelDiff(y, emulated) < 1e-6, `bf16 matmul vs rounded operands: ${maxRelDiff(y, emulated)}`);
    assert.ok(maxRelDiff(y, exact) > 1e-4, 'the bf16 product equals the fp32 one: nothing was rounded');
    for (const t of [a, b, ar, br]) t.dispose();
  });
}

for (const backend of backends) {
  test(`matmul in bf16 is the product of the rounded operands, forward and backward, with wide copies' rows padded too (${backend})`, () => {
    setBackend(backend);
    // x = a·1 is an activation: its shared copy, 100 wide, and the 70-wide gradient's are padded to
    // 128 (bf16RowStride); K = N = 64 are copied as they are.
    for (const [K, N] of [[100, 70], [64, 64]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const M = 3, label = `${backend} K=${K} N=${N} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
          const a = param(transA ? [K, M] : [M, K], 31), b = param(transB ? [N, K] : [K, N], 32);
          const rounded = (t: Tensor) => {
            const r = param([...t.shape], 0);
            roundBf16(t.data, r.data, t.size);
            return r;
          };
          // dC = w, already bf16-exact, so its copy rounds nothing.
          const w = rounded(param([M, N], 33)), ar = rounded(a), br = rounded(b);
          const run = (x: Tensor, y: Tensor) => {
            const out = scope(() => {
              const c = ops.matmul(ops.scale(x, 1), y, { transA, transB });
              ops.sum(ops.mul(c, w)).backward();
              return Float32Array.from(c.data);
            });
            return [out, Float32Array.from(x.grad!.data), Float32Array.from(y.grad!.data)];
          };
          const got = withPrecision('bf16', () => run(a, b)), want = run(ar, br);
          ['C', 'dA', 'dB'].forEach((name, i) => assert.ok(maxRelDiff(got[i], want[i]) < 1e-6, `${label} ${name}: ${maxRelDiff(got[i], want[i])}`));
          for (const t of [a, b, w, ar, br]) t.dispose();
        }
      }
    }
  });
}

test('mixedGemm reads a padded bf16 copy with its own row stride, and refuses another', () => {
  setBackend('js');
  const A = param([3, 100], 41).data, B = param([100, 5], 42).data;
  const padded = bf16RowsCopy(A, 3, 100), plain = bf16Copy(A, 300);
  assert.deepEqual(padded.rows, { cols: 100, ld: 128 });
  const C1 = new Float32Array(15), C2 = new Float32Array(15);
  mixedGemm(true, false, false, 3, 5, 100, 1, padded, 100, B, 5, 0, C1, 5);
  mixedGemm(true, false, false, 3, 5, 100, 1, plain, 100, B, 5, 0, C2, 5);
  assert.deepEqual(C1, C2);
  assert.throws(() => mixedGemm(true, false, false, 3, 5, 50, 1, padded, 50, B, 5, 0, C1, 5), /A's bf16 copy holds rows of 100 values \(128 apart\), but the product reads it with ld = 50/);
  padded.packed.dispose();
  plain.packed.dispose();
});

test('precision: withPrecision restores the previous setting, bad values are refused by name', () => {
  assert.equal(matmulPrecision(), 'fp32');
  assert.throws(() => withPrecision('bf16', () => {
    assert.equal(matmulPrecision(), 'bf16');
    throw new Error('boom');
  }), /boom/);
  assert.equal(matmulPrecision(), 'fp32');
  assert.throws(() => setMatmulPrecision('fp16' as Precision), /precision: expected one of fp32, bf16, got "fp16"/);
});

test('bf16Support names the hardware oneDNN detected, or says the emulation is slow', () => {
  setBackend('js');
  assert.match(bf16Support(), /^emulated in fp32 on the js backend \(slow/);
  if (backends.length < 2) return;
  setBackend('native');
  const isa = nativeBf16Isa(), k = loadNativeKernels()!;
  assert.equal(k.hasBf16Gemm(), isa !== 'none');
  assert.match(bf16Support(), isa === 'amx' ? /on AMX$/ : isa === 'avx512_bf16' ? /on AVX512-BF16$/ : /neither AMX nor AVX512-BF16, so bf16 is slower/);
});
