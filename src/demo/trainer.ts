/**
 * The demo page's training run, free of Node modules so it bundles for the browser: a tiny LLaMA
 * on the characters of a built-in text, a full-rank warm start, then ReLoRA (Lialin et al., ICLR
 * 2024) — LoRA factors trained for a cycle, merged into the frozen weights, re-drawn, the
 * optimizer's LoRA moments reset — with the rank of the accumulated update W − W_warm_start
 * measured at every merge. One `step()` is one optimizer update.
 */
import { RandomStream } from '../engine/rng.ts';
import { noGrad, scope, Tensor, toHostAll } from '../engine/tensor.ts';
import { LlamaForCausalLM } from '../nn/llama.ts';
import { AdamW, clipScale, startGradNorm } from '../optim/adamw.ts';
import { makeSchedule } from '../optim/schedule.ts';
import type { LoraLinear } from '../relora/lora-linear.ts';
import { updateRank } from '../relora/rank.ts';
import { restart } from '../relora/restart.ts';
import { loraStreams, wrapWithLora } from '../relora/wrap.ts';

export interface DemoOptions {
  text: string;
  seqLen?: number;
  batch?: number;
  warmStartSteps?: number;
  cycleLength?: number;
  /** Cycles of the ReLoRA phase (each ends in a merge except the last). */
  cycles?: number;
  rank?: number;
  lr?: number;
  seed?: number;
}

export interface DemoRecord {
  update: number;
  phase: 'full' | 'relora';
  loss: number;
  lr: number;
  merges: number;
  /** Rank of W − W_warm_start of the tracked projection, measured at the latest merge. */
  rank: number | null;
}

export class DemoTrainer {
  readonly totalSteps: number;
  readonly vocab: string[];
  private readonly ids: Int32Array;
  private readonly model: LlamaForCausalLM;
  private optimizer: AdamW;
  private readonly o: Required<Omit<DemoOptions, 'text'>>;
  private readonly data: RandomStream;
  private layers: Map<string, LoraLinear> | null = null;
  private warmWeight: Float32Array | null = null;
  private readonly counters = { merges: 0, resets: 0 };
  private update = 0;
  private lastRank: number | null = null;
  private readonly lambdaFull: (s: number) => number;
  private lambdaLow: ((s: number) => number) | null = null;

  constructor(opts: DemoOptions) {
    this.o = { seqLen: 32, batch: 4, warmStartSteps: 30, cycleLength: 20, cycles: 3, rank: 8, lr: 3e-3, seed: 1, ...opts };
    this.vocab = [...new Set(opts.text)].sort();
    const index = new Map(this.vocab.map((c, i) => [c, i]));
    this.ids = Int32Array.from(opts.text, (c) => index.get(c)!);
    if (this.ids.length < this.o.seqLen + 1) throw new Error(`demo: the text has ${this.ids.length} characters; at least ${this.o.seqLen + 1} are needed`);
    this.totalSteps = this.o.warmStartSteps + this.o.cycleLength * this.o.cycles;
    this.model = new LlamaForCausalLM({
      vocabSize: this.vocab.length, hiddenSize: 64, intermediateSize: 172, numHeads: 4, numKVHeads: 4, numLayers: 2,
      maxSeqLen: this.o.seqLen, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false,
    }).initWeights(this.o.seed);
    this.optimizer = new AdamW(this.model.namedTrainableParameters(), { lr: this.o.lr, weightDecay: 0 });
    this.data = RandomStream.named(this.o.seed, 'demo_batches');
    this.lambdaFull = makeSchedule({ scheduler: 'cosine', steps: this.totalSteps, warmupSteps: 5 });
  }

  get done(): boolean {
    return this.update >= this.totalSteps;
  }

  /** One optimizer update; switches to ReLoRA after the warm start and merges at cycle ends. */
  step(): DemoRecord {
    if (this.done) throw new Error('demo: the run is finished');
    if (this.update === this.o.warmStartSteps) this.switchToReLoRA();
    const phase = this.layers ? 'relora' : 'full';
    const lambda = phase === 'full' ? this.lambdaFull(this.update) : this.lambdaLow!(this.update - this.o.warmStartSteps);
    const lr = this.o.lr * lambda;
    const l = scope(() => {
      this.model.train();
      const out = this.model.loss(this.batch());
      out.backward();
      return out;
    });
    // On WebGPU the loss and the gradients' sums of squares come back in one readback.
    const pending = startGradNorm(this.optimizer.params.map(([, t]) => t));
    toHostAll(pending.deviceSums ? [l, pending.deviceSums] : [l]);
    const norm = pending.norm();
    const loss = l.item();
    l.dispose();
    this.optimizer.step(lr, clipScale(norm, 1.0));
    for (const [, t] of this.optimizer.params) {
      t.grad?.dispose();
      t.grad = null;
    }
    this.update++;
    const low = this.update - this.o.warmStartSteps;
    if (this.layers && low > 0 && low % this.o.cycleLength === 0 && !this.done) this.merge();
    return { update: this.update, phase, loss, lr, merges: this.counters.merges, rank: this.lastRank };
  }

  /** Characters continuing `prompt`, drawn from the model's softmax at `temperature`. */
  sample(prompt: string, length: number, temperature = 0.8): string {
    const index = new Map(this.vocab.map((c, i) => [c, i]));
    const ctx = [...prompt].filter((c) => index.has(c)).map((c) => index.get(c)!);
    if (ctx.length === 0) ctx.push(0);
    const rng = new RandomStream(this.update + 7);
    const u = new Float32Array(1);
    let out = '';
    this.model.eval();
    noGrad(() => {
      for (let i = 0; i < length; i++) {
        const window = ctx.slice(-this.o.seqLen);
        const probs = scope(() => {
          const logits = this.model.forward(Tensor.from(Int32Array.from(window), [1, window.length]));
          const V = this.vocab.length, row = logits.data.subarray((window.length - 1) * V, window.length * V);
          const max = Math.max(...row);
          const e = Array.from(row, (z) => Math.exp((z - max) / temperature));
          const s = e.reduce((a, b) => a + b, 0);
          return e.map((x) => x / s);
        });
        rng.uniform(u);
        let c = 0, acc = probs[0];
        while (acc < u[0] && c < probs.length - 1) acc += probs[++c];
        ctx.push(c);
        out += this.vocab[c];
      }
    });
    return out;
  }

  private batch(): Tensor {
    const { seqLen, batch } = this.o;
    const ids = new Int32Array(batch * seqLen);
    const u = new Float32Array(batch);
    this.data.uniform(u);
    for (let b = 0; b < batch; b++) {
      const start = Math.floor(u[b] * (this.ids.length - seqLen));
      ids.set(this.ids.subarray(start, start + seqLen), b * seqLen);
    }
    return Tensor.from(ids, [batch, seqLen]);
  }

  private switchToReLoRA(): void {
    const streams = loraStreams(this.o.seed);
    this.layers = wrapWithLora(this.model, { rank: this.o.rank, alpha: 32, dropout: 0, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, streams);
    this.warmWeight = Float32Array.from(this.tracked().weight.data);
    this.optimizer = new AdamW(this.model.namedTrainableParameters(), { lr: this.o.lr, weightDecay: 0 });
    this.lambdaLow = makeSchedule({
      scheduler: 'cosine_restarts', steps: this.o.cycleLength * this.o.cycles, warmupSteps: 3, restartWarmupSteps: 3, cycleLength: this.o.cycleLength,
    });
  }

  private merge(): void {
    restart(this.layers!, this.optimizer, { method: 'random_shared', ratio: 0.999 }, {
      init: RandomStream.named(this.o.seed, 'demo_reinit'), prune: RandomStream.named(this.o.seed + this.counters.merges, 'demo_prune'),
    }, this.counters);
    const layer = this.tracked();
    this.lastRank = updateRank(layer.weight.data, this.warmWeight!, layer.weight.shape[0], layer.weight.shape[1]).rank;
  }

  /** The projection whose accumulated update the page shows: the first layer's q_proj. */
  private tracked(): LoraLinear {
    for (const [name, l] of this.layers!) if (name.includes('q_proj')) return l;
    return this.layers!.values().next().value!;
  }
}
