/**
 * What training holds in memory, computed from the config alone (no allocation): parameter
 * counts and the bytes of parameters, gradients and AdamW state (two fp32 moments).
 */
import { countParameters, type LlamaConfig } from '../nn/config.ts';
import type { ProjectionName } from '../nn/llama.ts';
import { validateLoraOptions } from './lora-linear.ts';
import type { TrainingMode, WrapOptions } from './wrap.ts';

export interface TrainingFootprint {
  /** Parameters of the model itself (what docs/method.md's table of sizes and an exported model count). */
  params_total: number;
  /** LoRA factors held on top of it (0 in full mode). */
  params_lora: number;
  params_trainable: number;
  bytes_params: number;
  bytes_grads: number;
  bytes_optimizer: number;
}

/** [in, out] of a projection. */
export function projectionShape(cfg: LlamaConfig, p: ProjectionName): [number, number] {
  const d = cfg.hiddenSize, f = cfg.intermediateSize;
  if (p === 'gate_proj' || p === 'up_proj') return [d, f];
  if (p === 'down_proj') return [f, d];
  // Grouped-query attention: k and v project to the (fewer) key/value heads.
  if (p === 'k_proj' || p === 'v_proj') return [d, (cfg.numKVHeads ?? cfg.numHeads) * (d / cfg.numHeads)];
  return [d, d];
}

export function trainingFootprint(cfg: LlamaConfig, mode: TrainingMode, lora: WrapOptions): TrainingFootprint {
  const base = countParameters(cfg);
  let lora_ = 0, trainable = base;
  if (mode !== 'full') {
    validateLoraOptions(lora);
    let frozen = 0, factors = 0;
    for (const p of lora.targetModules as ProjectionName[]) {
      const [inF, outF] = projectionShape(cfg, p);
      validateLoraOptions(lora, inF, outF, p);
      frozen += inF * outF;
      factors += lora.rank * (inF + outF);
    }
    lora_ = cfg.numLayers * factors;
    trainable = base - cfg.numLayers * frozen + cfg.numLayers * factors;
  }
  return {
    params_total: base,
    params_lora: lora_,
    params_trainable: trainable,
    bytes_params: (base + lora_) * 4,
    bytes_grads: trainable * 4,
    bytes_optimizer: trainable * 8,
  };
}
