/**
 * Incremental decoding with a key/value cache: positions already seen keep their rotated keys
 * and their values per layer, so each new token costs one position's projections and one row of
 * attention against the cache, instead of a forward pass over the whole sequence.
 *
 * Inference only (no autodiff): plain Float32Arrays through the kernels of the active backend.
 * The arithmetic is the model's forward pass, so logits agree with LlamaForCausalLM.forward on
 * the same prefix to float32 rounding.
 */
import { K } from '../engine/backend.ts';
import { ropeTables, type RopeTables } from '../engine/ops/rope.ts';
import { headDimOf, kvHeadsOf, type LlamaConfig } from '../nn/config.ts';
import type { Embedding, Linear, RMSNorm } from '../nn/layers.ts';
import type { DecoderLayer, LinearLike, LlamaForCausalLM } from '../nn/llama.ts';
import { LoraLinear } from '../relora/lora-linear.ts';

interface LayerWeights {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
  /** Rotated keys and values of every cached position: [capacity, kvHeads*headDim]. */
  keys: Float32Array;
  values: Float32Array;
}

/** The effective weight of a projection: a LoRA layer's W + s·B·A, computed once. */
function weightOf(m: LinearLike): Float32Array {
  if (m instanceof LoraLinear) return m.mergedWeight();
  return (m as unknown as Linear).weight.data;
}

/** y[rows, out] = x[rows, in] · Wᵀ for W [out, in]. */
function project(x: Float32Array, w: Float32Array, rows: number, inF: number, outF: number): Float32Array {
  const y = new Float32Array(rows * outF);
  K().gemm(false, true, rows, outF, inF, 1, x, inF, 0, w, inF, 0, 0, y, outF, 0, 1);
  return y;
}

function rmsnorm(x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  K().rmsnormForward(x, w, out, new Float32Array(rows), rows, dim, eps);
  return out;
}

/**
 * Causal attention of n new rows (positions p … p+n−1) against every cached position, query
 * head h reading K/V head ⌊h / groups⌋. Plain loops rather than GEMM calls: the products are
 * small (one row per head when decoding) and their shapes change with every position, which
 * would make a GEMM library set up a new kernel each call.
 */
function attendCached(
  q: Float32Array, keys: Float32Array, values: Float32Array, out: Float32Array, scores: Float64Array,
  n: number, p: number, H: number, groups: number, D: number, scale: number,
): void {
  const HD = H * D, kvDim = (H / groups) * D;
  out.fill(0);
  for (let i = 0; i < n; i++) {
    const last = p + i; // position p+i sees positions 0 … p+i
    for (let h = 0; h < H; h++) {
      const qo = i * HD + h * D, ko = Math.floor(h / groups) * D;
      let max = -Infinity;
      for (let s = 0; s <= last; s++) {
        const kr = s * kvDim + ko;
        let dot = 0;
        for (let e = 0; e < D; e++) dot += q[qo + e] * keys[kr + e];
        const z = dot * scale;
        scores[s] = z;
        if (z > max) max = z;
      }
      let sum = 0;
      for (let s = 0; s <= last; s++) {
        const e = Math.exp(scores[s] - max);
        scores[s] = e;
        sum += e;
      }
      for (let s = 0; s <= last; s++) {
        const weight = scores[s] / sum, vr = s * kvDim + ko;
        for (let e = 0; e < D; e++) out[qo + e] += weight * values[vr + e];
      }
    }
  }
}

export class KVCache {
  readonly config: LlamaConfig;
  readonly capacity: number;
  private pos = 0;
  private readonly layers: LayerWeights[];
  private readonly embed: Float32Array;
  private readonly finalNorm: Float32Array;
  private readonly head: Float32Array;
  private readonly tables: RopeTables;

  /**
   * Snapshots the model's weights (LoRA layers merged) and allocates room for `capacity`
   * positions. The model must not change while the cache is in use.
   */
  constructor(model: LlamaForCausalLM, capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`KVCache: capacity must be a positive integer, got ${capacity}`);
    const c = model.config;
    this.config = c;
    this.capacity = capacity;
    const kvDim = kvHeadsOf(c) * headDimOf(c);
    const body = model.child('model');
    this.embed = body.child<Embedding>('embed_tokens').weight.data;
    this.finalNorm = body.child<RMSNorm>('norm').weight.data;
    this.head = weightOf(model.child<LinearLike>('lm_head'));
    this.layers = [];
    for (let i = 0; i < model.layers.length; i++) {
      const layer = model.layers.at<DecoderLayer>(i);
      const attn = layer.child('self_attn'), mlp = layer.child('mlp');
      this.layers.push({
        inputNorm: layer.child<RMSNorm>('input_layernorm').weight.data,
        postNorm: layer.child<RMSNorm>('post_attention_layernorm').weight.data,
        q: weightOf(attn.child('q_proj')),
        k: weightOf(attn.child('k_proj')),
        v: weightOf(attn.child('v_proj')),
        o: weightOf(attn.child('o_proj')),
        gate: weightOf(mlp.child('gate_proj')),
        up: weightOf(mlp.child('up_proj')),
        down: weightOf(mlp.child('down_proj')),
        keys: new Float32Array(capacity * kvDim),
        values: new Float32Array(capacity * kvDim),
      });
    }
    // Table values depend only on the position, so these agree with the model's own tables.
    this.tables = ropeTables(capacity, headDimOf(c), c.ropeTheta);
  }

  /** Positions processed so far. */
  get length(): number {
    return this.pos;
  }

  /** Forget every position (the weights stay). */
  reset(): void {
    this.pos = 0;
  }

  /**
   * Runs `ids` at the next positions and returns the logits [V] of the last one, or of every one
   * ([n, V]) when `allLogits`.
   */
  forward(ids: ArrayLike<number>, allLogits = false): Float32Array {
    const n = ids.length;
    if (n === 0) throw new Error('KVCache.forward: no token ids given');
    if (this.pos + n > this.capacity) {
      throw new Error(`KVCache.forward: ${this.pos} cached + ${n} new positions exceed the cache capacity ${this.capacity}`);
    }
    const c = this.config, k = K();
    const d = c.hiddenSize, f = c.intermediateSize, V = c.vocabSize;
    const H = c.numHeads, kvH = kvHeadsOf(c), D = headDimOf(c), HD = H * D, kvDim = kvH * D;
    const groups = H / kvH, half = D / 2, p = this.pos, L = p + n;
    const scale = 1 / Math.sqrt(D);
    const cos = this.tables.cos.subarray(p * half), sin = this.tables.sin.subarray(p * half);

    const x = new Float32Array(n * d);
    k.embeddingForward(this.embed, Int32Array.from(ids), x, n, V, d);
    const scores = new Float64Array(L);
    const attn = new Float32Array(n * HD);
    for (const w of this.layers) {
      const h = rmsnorm(x, w.inputNorm, n, d, c.rmsNormEps);
      const q = project(h, w.q, n, d, HD);
      const qr = new Float32Array(n * HD);
      k.ropeForward(q, cos, sin, qr, 1, n, H, D);
      k.ropeForward(project(h, w.k, n, d, kvDim), cos, sin, w.keys.subarray(p * kvDim, L * kvDim), 1, n, kvH, D);
      w.values.set(project(h, w.v, n, d, kvDim), p * kvDim);

      attendCached(qr, w.keys, w.values, attn, scores, n, p, H, groups, D, scale);
      k.axpy(1, project(attn, w.o, n, HD, d), x, n * d);

      const h2 = rmsnorm(x, w.postNorm, n, d, c.rmsNormEps);
      const gate = project(h2, w.gate, n, d, f);
      const act = new Float32Array(n * f);
      k.swigluForward(gate, project(h2, w.up, n, d, f), act, n * f);
      k.axpy(1, project(act, w.down, n, f, d), x, n * d);
    }
    this.pos = L;

    const rows = allLogits ? n : 1;
    const last = x.subarray((n - rows) * d);
    return project(rmsnorm(last, this.finalNorm, rows, d, c.rmsNormEps), this.head, rows, d, V);
  }
}
