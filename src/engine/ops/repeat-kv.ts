/**
 * Grouped-query attention's K/V sharing as an op: each key/value head serves a group of query
 * heads, so before attention it is repeated once per query head of its group. The layout is
 * Hugging Face's repeat_kv (query head h reads K/V head ⌊h / groups⌋); the backward sums the
 * gradients of a group's copies back into the one head they came from.
 */
import { gradBuffer, recording, shapeStr, Tensor } from '../tensor.ts';

/** x: [B, T, kvHeads*D] -> [B, T, kvHeads*groups*D]. With groups = 1 x itself is returned. */
export function repeatKV(x: Tensor, kvHeads: number, groups: number): Tensor {
  if (x.shape.length !== 3) throw new Error(`repeatKV: expected [B, T, kvHeads*D], got ${shapeStr(x.shape)}`);
  if (!Number.isInteger(kvHeads) || kvHeads < 1 || x.shape[2] % kvHeads !== 0) {
    throw new Error(`repeatKV: width ${x.shape[2]} is not divisible into ${kvHeads} key/value heads`);
  }
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`repeatKV: groups must be a positive integer, got ${groups}`);
  if (groups === 1) return x;
  const [B, T, width] = x.shape;
  const D = width / kvHeads;
  const rows = B * T, outWidth = width * groups;
  const src = x.data;
  const out = Tensor.empty([B, T, outWidth], false);
  const dst = out.data;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < kvHeads; g++) {
      const head = src.subarray(r * width + g * D, r * width + (g + 1) * D);
      for (let j = 0; j < groups; j++) dst.set(head, r * outWidth + (g * groups + j) * D);
    }
  }
  if (recording(x)) {
    out.requiresGrad = true;
    out.node = {
      op: 'repeatKV',
      inputs: [x],
      backward(gOut) {
        const gx = gradBuffer(x);
        if (!gx) return;
        for (let r = 0; r < rows; r++) {
          for (let g = 0; g < kvHeads; g++) {
            const to = r * width + g * D;
            for (let j = 0; j < groups; j++) {
              const from = r * outWidth + (g * groups + j) * D;
              for (let i = 0; i < D; i++) gx[to + i] += gOut[from + i];
            }
          }
        }
      },
    };
  }
  return out;
}
