/** The building blocks of LLaMA: Linear (no bias), Embedding, RMSNorm. */
import * as ops from '../engine/ops/index.ts';
import type { RandomStream } from '../engine/rng.ts';
import { parameter, type Tensor } from '../engine/tensor.ts';
import { Module } from './module.ts';

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.registerParameter('weight', parameter([outFeatures, inFeatures]));
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight);
  }

  initNormal(rng: RandomStream, std: number): void {
    rng.normal(this.weight.data, 0, std);
  }
}

export class Embedding extends Module {
  constructor(readonly numEmbeddings: number, readonly dim: number) {
    super();
    this.registerParameter('weight', parameter([numEmbeddings, dim]));
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  forward(ids: Tensor): Tensor {
    return ops.embedding(ids, this.weight);
  }
}

export class RMSNorm extends Module {
  constructor(readonly dim: number, readonly eps: number) {
    super();
    this.registerParameter('weight', parameter([dim])).data.fill(1);
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  forward(x: Tensor): Tensor {
    return ops.rmsnorm(x, this.weight, this.eps);
  }
}
