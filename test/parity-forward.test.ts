/** Logits, loss and every parameter gradient against Hugging Face LlamaForCausalLM (fixtures from tools/reference/). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { scope, Tensor } from '../src/engine/tensor.ts';
import { openFixture, parityModel, relError } from './parity-helpers.ts';

for (const backend of ['js', 'native'] as const) {
  test(`logits, loss and gradients match transformers on the ${backend} backend`, () => {
    setBackend(backend);
    const fx = openFixture('parity_forward.safetensors');
    const ids = Tensor.from(fx.readInt32('input_ids'), [2, 16]);
    const model = parityModel();
    model.train();
    scope(() => {
      const logits = model.forward(ids);
      const err = relError(logits.data, fx.readFloat32('logits'));
      assert.ok(err < 1e-4, `logits relative error ${err}`);
    });
    const loss = scope(() => {
      const l = model.loss(ids);
      l.backward();
      return l.item();
    });
    const refLoss = fx.readFloat32('loss')[0];
    assert.ok(Math.abs(loss - refLoss) / Math.abs(refLoss) < 1e-5, `loss ${loss} vs ${refLoss}`);
    let checked = 0;
    for (const [name, p] of model.namedParameters()) {
      const err = relError(p.grad!.data, fx.readFloat32(`grad.${name}`));
      assert.ok(err < 1e-4, `gradient of ${name}: relative error ${err}`);
      checked++;
    }
    assert.equal(checked, fx.names().filter((n) => n.startsWith('grad.')).length);
    model.dispose();
  });
}
