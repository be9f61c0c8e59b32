/**
 * linearCrossEntropy (lm_head and the loss in one chunked op) against the two ops it replaces,
 * linear then crossEntropy, on every backend: the loss and both gradients, whatever the chunking,
 * with ignored rows, an upstream factor, a weight that already has a gradient (tied embeddings,
 * accumulation over micro-batches), and the model's loss() against logits from forward().
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { loadNativeKernels } from '../src/engine/backends/native.ts';
import * as ops from '../src/engine/ops/index.ts';
import { noGrad, scope, Tensor } from '../src/engine/tensor.ts';
import { LlamaForCausalLM, shiftedTargets } from '../src/nn/llama.ts';

import { maxRelDiff, param } from './engine-helpers.ts';

const backends = loadNativeKernels() ? (['js', 'native'] as const) : (['js'] as const);

const rows = 11, d = 6, V = 13;
const targetValues = Int32Array.from({ length: rows }, (_, i) => (i % 4 === 3 ? ops.IGNORE_INDEX : (i * 5) % V));

/** Loss and the gradients of x and W after backward of factor·loss; `prior` pre-fills W's gradient. */
function run(fused: boolean, chunkRows: number | undefined, factor: number, prior: boolean): { loss: number; gx: Float32Array; gw: Float32Array } {
  return scope(() => {
    const x = param([rows, d], 1, true, 2), W = param([V, d], 2);
    if (prior) W.grad = Tensor.from(Float32Array.from({ length: V * d }, (_, i) => Math.cos(i)), [V, d]);
    const targets = Tensor.from(targetValues, [rows]);
    const loss = fused ? ops.linearCrossEntropy(x, W, targets, { chunkRows }) : ops.crossEntropy(ops.linear(x, W), targets);
    ops.scale(loss, factor).backward();
    const out = { loss: loss.item(), gx: Float32Array.from(x.grad!.data), gw: Float32Array.from(W.grad!.data) };
    for (const t of [x, W]) t.dispose();
    return out;
  });
}

for (const backend of backends) {
  test(`linearCrossEntropy equals linear + crossEntropy on the ${backend} backend`, () => {
    setBackend(backend);
    for (const chunkRows of [1, 3, 4, rows, undefined]) {
      for (const [factor, prior] of [[1, false], [0.5, false], [1, true], [-2, true]] as const) {
        const want = run(false, undefined, factor, prior), got = run(true, chunkRows, factor, prior);
        const what = `chunkRows ${chunkRows}, factor ${factor}, prior gradient ${prior}`;
        assert.ok(Math.abs(got.loss - want.loss) <= 1e-6 * Math.abs(want.loss), `${what}: loss ${got.loss} vs ${want.loss}`);
        assert.ok(maxRelDiff(got.gx, want.gx) < 1e-5, `${what}: dx differs by ${maxRelDiff(got.gx, want.gx)}`);
        assert.ok(maxRelDiff(got.gw, want.gw) < 1e-5, `${what}: dW differs by ${maxRelDiff(got.gw, want.gw)}`);
      }
    }
  });

  test(`LlamaForCausalLM.loss (fused head) matches crossEntropy of forward() on the ${backend} backend, tied and untied`, () => {
    setBackend(backend);
    for (const tieWordEmbeddings of [false, true]) {
      const cfg = { vocabSize: 97, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 2, maxSeqLen: 16, ropeTheta: 10000, rmsNormEps: 1e-6, tieWordEmbeddings };
      const grads = (fused: boolean): { loss: number; g: Map<string, Float32Array> } => {
        const model = new LlamaForCausalLM(cfg).initWeights(7);
        const ids = Tensor.from(Int32Array.from({ length: 3 * 9 }, (_, i) => (i * 31 + 5) % 97), [3, 9]);
        const loss = scope(() => {
          const l = fused ? model.loss(ids) : ops.crossEntropy(model.forward(ids), shiftedTargets(ids));
          l.backward();
          return l.item();
        });
        const g = new Map([...model.namedParameters()].map(([n, p]) => [n, Float32Array.from(p.grad!.data)] as [string, Float32Array]));
        return { loss, g };
      };
      const want = grads(false), got = grads(true);
      assert.ok(Math.abs(got.loss - want.loss) <= 1e-6 * want.loss, `tied ${tieWordEmbeddings}: loss ${got.loss} vs ${want.loss}`);
      assert.deepEqual([...got.g.keys()], [...want.g.keys()]);
      for (const [name, g] of want.g) {
        assert.ok(maxRelDiff(got.g.get(name)!, g) < 1e-4, `tied ${tieWordEmbeddings}: ${name} gradient differs by ${maxRelDiff(got.g.get(name)!, g)}`);
      }
    }
  });
}

test('linearCrossEntropy without gradients records nothing, and names bad input', () => {
  setBackend('js');
  const x = param([rows, d], 1), W = param([V, d], 2);
  const loss = noGrad(() => ops.linearCrossEntropy(x, W, Tensor.from(targetValues, [rows]), { chunkRows: 4 }));
  assert.equal(loss.node, null);
  assert.equal(loss.requiresGrad, false);
  assert.ok(Number.isFinite(loss.item()) && loss.item() > 0);
  const bad = Int32Array.from(targetValues);
  bad[5] = V;
  assert.throws(() => ops.linearCrossEntropy(x, W, Tensor.from(bad, [rows])), /target 13 at row 5 is outside \[0, 13\)/);
  assert.throws(() => ops.linearCrossEntropy(x, W, Tensor.from(new Int32Array(rows).fill(ops.IGNORE_INDEX), [rows])), /every target is the ignore index/);
  assert.throws(() => ops.linearCrossEntropy(x, param([V, d + 1], 3), Tensor.from(targetValues, [rows])), /last dimension 6, weight \[13, 7\] expects 7/);
  assert.throws(() => ops.linearCrossEntropy(x, W, Tensor.from(targetValues.subarray(1), [rows - 1])), /11 rows but targets \[10\] have 10/);
  assert.throws(() => ops.linearCrossEntropy(x, W, Tensor.from(targetValues, [rows]), { chunkRows: 0 }), /chunkRows must be a positive integer, got 0/);
  assert.equal(x.grad, null);
});
