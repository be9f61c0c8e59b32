/**
 * LLaMA decoder, numerically the same as Hugging Face LlamaForCausalLM (docs/method.md, "Model"):
 * pre-norm RMSNorm, rotary embeddings (rotate half), causal multi-head attention, SwiGLU MLP,
 * final norm, untied lm_head, no biases. Parameter names are Hugging Face's.
 *
 * Beyond the reference shapes, for models imported from Hugging Face: grouped-query attention
 * (numKVHeads < numHeads; k_proj and v_proj are [numKVHeads·headDim, hidden]) and tied
 * embeddings (lm_head shares the embedding tensor, listed once as model.embed_tokens.weight).
 */
import * as ops from '../engine/ops/index.ts';
import { RandomStream } from '../engine/rng.ts';
import { releaseUnreadValues } from '../engine/release.ts';
import { shapeStr, Tensor } from '../engine/tensor.ts';
import { headDimOf, kvHeadsOf, validateConfig, type LlamaConfig } from './config.ts';
import { Embedding, Linear, RMSNorm } from './layers.ts';
import { Module } from './module.ts';

/** Anything with a Linear's forward: a plain Linear or a ReLoRA-wrapped one. */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: Tensor): Tensor;
}

export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type ProjectionName = (typeof PROJECTIONS)[number];

export class Attention extends Module {
  constructor(readonly cfg: LlamaConfig) {
    super();
    const d = cfg.hiddenSize, kvDim = kvHeadsOf(cfg) * headDimOf(cfg);
    this.registerModule('q_proj', new Linear(d, d));
    this.registerModule('k_proj', new Linear(d, kvDim));
    this.registerModule('v_proj', new Linear(d, kvDim));
    this.registerModule('o_proj', new Linear(d, d));
  }

  forward(x: Tensor, tables: ops.RopeTables): Tensor {
    const h = this.cfg.numHeads, kvh = kvHeadsOf(this.cfg);
    const q = ops.rope(this.child<LinearLike>('q_proj').forward(x), tables, h);
    // Rotating before the repeat rotates each shared head once instead of once per group member.
    const k = ops.repeatKV(ops.rope(this.child<LinearLike>('k_proj').forward(x), tables, kvh), kvh, h / kvh);
    const v = ops.repeatKV(this.child<LinearLike>('v_proj').forward(x), kvh, h / kvh);
    return this.child<LinearLike>('o_proj').forward(ops.causalAttention(q, k, v, h));
  }
}

export class MLP extends Module {
  constructor(cfg: LlamaConfig) {
    super();
    const d = cfg.hiddenSize, f = cfg.intermediateSize;
    this.registerModule('gate_proj', new Linear(d, f));
    this.registerModule('up_proj', new Linear(d, f));
    this.registerModule('down_proj', new Linear(f, d));
  }

  forward(x: Tensor): Tensor {
    const gate = this.child<LinearLike>('gate_proj').forward(x);
    const up = this.child<LinearLike>('up_proj').forward(x);
    return this.child<LinearLike>('down_proj').forward(ops.swiglu(gate, up));
  }
}

export class DecoderLayer extends Module {
  constructor(cfg: LlamaConfig) {
    super();
    this.registerModule('self_attn', new Attention(cfg));
    this.registerModule('mlp', new MLP(cfg));
    this.registerModule('input_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
    this.registerModule('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
  }

  forward(x: Tensor, tables: ops.RopeTables): Tensor {
    const attn = this.child<Attention>('self_attn'), mlp = this.child<MLP>('mlp');
    const h = ops.add(x, attn.forward(this.child<RMSNorm>('input_layernorm').forward(x), tables));
    const out = ops.add(h, mlp.forward(this.child<RMSNorm>('post_attention_layernorm').forward(h)));
    // What no backward reads (in bf16 most of the layer: its products keep bf16 copies) goes back
    // to the pool now, for the next layer, instead of living until backward.
    releaseUnreadValues(out, [x]);
    return out;
  }
}

class LlamaModel extends Module {
  constructor(cfg: LlamaConfig) {
    super();
    this.registerModule('embed_tokens', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    const layers = this.registerModule('layers', new ModuleList());
    for (let i = 0; i < cfg.numLayers; i++) layers.append(new DecoderLayer(cfg));
    this.registerModule('norm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
  }
}

export class ModuleList extends Module {
  private items: Module[] = [];

  append(m: Module): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }

  at<M extends Module>(i: number): M {
    return this.child<M>(String(i));
  }

  get length(): number {
    return this.items.length;
  }
}

export class LlamaForCausalLM extends Module {
  readonly config: LlamaConfig;
  private tables: ops.RopeTables;

  constructor(config: LlamaConfig) {
    super();
    this.config = validateConfig(config);
    const cfg = this.config;
    const body = this.registerModule('model', new LlamaModel(cfg));
    const head = this.registerModule('lm_head', new Linear(cfg.hiddenSize, cfg.vocabSize));
    if (cfg.tieWordEmbeddings) {
      // One tensor in two places: both uses accumulate into its single gradient, and
      // namedParameters lists it once, under the embedding's name (as Hugging Face saves it).
      head.weight.dispose();
      head.setParameter('weight', body.child<Embedding>('embed_tokens').weight);
    }
    this.tables = ops.ropeTables(cfg.maxSeqLen, headDimOf(cfg), cfg.ropeTheta);
  }

  /** Every Linear and the Embedding ~ N(0, std); RMSNorm weights = 1. */
  initWeights(seed: number, std = 0.02): this {
    const rng = RandomStream.named(seed, 'init');
    for (const [name, t] of this.namedParameters()) {
      if (name.endsWith('norm.weight')) t.data.fill(1);
      else rng.normal(t.data, 0, std);
    }
    return this;
  }

  get layers(): ModuleList {
    return this.child('model').child<ModuleList>('layers');
  }

  /** ids: int32 [B, T] -> logits [B, T, V]. */
  forward(ids: Tensor): Tensor {
    return this.child<Linear>('lm_head').forward(this.hiddenStates(ids));
  }

  /** ids: int32 [B, T] -> the final norm's output [B, T, d], what lm_head reads. */
  hiddenStates(ids: Tensor): Tensor {
    if (ids.dtype !== 'int32' || ids.shape.length !== 2) throw new Error(`LlamaForCausalLM: input ids must be int32 [batch, seq], got ${ids.dtype} ${shapeStr(ids.shape)}`);
    const T = ids.shape[1];
    if (T > this.config.maxSeqLen) throw new Error(`LlamaForCausalLM: sequence length ${T} exceeds maxSeqLen ${this.config.maxSeqLen}`);
    const m = this.child('model');
    let x = m.child<Embedding>('embed_tokens').forward(ids);
    const layers = this.layers;
    for (let i = 0; i < layers.length; i++) x = layers.at<DecoderLayer>(i).forward(x, this.tables);
    return m.child<RMSNorm>('norm').forward(x);
  }

  /**
   * Mean next-token cross-entropy, Hugging Face style: logits[:, t] predicts ids[:, t+1].
   * lm_head and the loss run as one chunked op, so the [B, T, V] logits never exist at once.
   */
  loss(ids: Tensor): Tensor {
    const head = this.child<Module>('lm_head');
    const targets = shiftedTargets(ids);
    if (head instanceof Linear) return ops.linearCrossEntropy(this.hiddenStates(ids), head.weight, targets);
    return ops.crossEntropy(this.forward(ids), targets);
  }
}

/** targets[b, t] = ids[b, t+1]; the last position of each sequence is ignored. */
export function shiftedTargets(ids: Tensor): Tensor {
  const [B, T] = ids.shape;
  const src = ids.ints;
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) out[b * T + t] = src[b * T + t + 1];
    out[b * T + T - 1] = ops.IGNORE_INDEX;
  }
  return Tensor.from(out, [B, T]);
}
