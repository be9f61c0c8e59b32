/** Rotary position embedding, Hugging Face "rotate half" layout. */
import { K } from '../backend.ts';
import { recording, shapeStr, Tensor, untracked } from '../tensor.ts';
import { gradSlot } from './grad.ts';

export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
  T: number;
  headDim: number;
}

/**
 * cos/sin tables [T, D/2] computed as Hugging Face does in float32:
 * inv_freq[i] = 1 / theta^(2i/D); angle = float32(t) * inv_freq[i].
 */
export function ropeTables(T: number, headDim: number, theta: number): RopeTables {
  if (headDim % 2 !== 0) throw new Error(`rope: head dimension ${headDim} must be even`);
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, Math.fround((2 * i) / headDim));
  const cos = new Float32Array(T * half), sin = new Float32Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(t * invFreq[i]);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin, T, headDim };
}

const negSinCache = new WeakMap<RopeTables, Float32Array>();

function negatedSin(tables: RopeTables): Float32Array {
  let s = negSinCache.get(tables);
  if (!s) {
    s = Float32Array.from(tables.sin, (v) => -v);
    negSinCache.set(tables, s);
  }
  return s;
}

const tableTensors = new WeakMap<Float32Array, Tensor>();

/** A table as a tensor that lives as long as the table does, so a device backend uploads it once. */
function table(a: Float32Array): Float32Array {
  let t = tableTensors.get(a);
  if (!t) tableTensors.set(a, (t = untracked(() => Tensor.from(a))));
  return t.buf;
}

/** x: [B, T, H*D] (or [B, T, H, D]); rotates each head by its position t. */
export function rope(x: Tensor, tables: RopeTables, heads: number): Tensor {
  if (x.shape.length < 3) throw new Error(`rope: expected [B, T, H*D], got ${shapeStr(x.shape)}`);
  const B = x.shape[0], T = x.shape[1], D = tables.headDim;
  if (x.size !== B * T * heads * D) throw new Error(`rope: ${shapeStr(x.shape)} is not [B, T, ${heads} heads × ${D}]`);
  if (T > tables.T) throw new Error(`rope: sequence length ${T} exceeds the table length ${tables.T}`);
  const out = Tensor.empty(x.shape, false);
  K().ropeForward(x.buf, table(tables.cos), table(tables.sin), out.buf, B, T, heads, D);
  if (recording(x)) {
    out.requiresGrad = true;
    out.node = {
      op: 'rope',
      inputs: [x],
      reads: [],
      backward(g) {
        const gx = gradSlot(x);
        if (!gx) return;
        // The inverse rotation is the forward one with sin negated: it writes a fresh gradient.
        if (gx.fresh) K().ropeForward(g, table(tables.cos), table(negatedSin(tables)), gx.data, B, T, heads, D);
        else K().ropeBackward(g, table(tables.cos), table(tables.sin), gx.data, B, T, heads, D);
      },
    };
  }
  return out;
}
