/**
 * Everything a run carries from one update to the next: where it is (update, phase, phase step),
 * what it has done (tokens, elapsed time, skipped updates, merges and resets), the data order,
 * the random streams and the optimizer. A checkpoint is exactly this plus the weights, so it is
 * written (`snapshot`) and read back (`restore`) here, side by side: a field added to one and
 * forgotten in the other shows.
 */
import { SequenceSampler, shardSequences, type SamplerState, type SequenceCount } from '../data/sampler.ts';
import { RandomStream, type RandomState } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { AdamW, type AdamWState } from '../optim/adamw.ts';
import { emptyRestartCounters, type RestartCounters } from '../relora/restarts.ts';
import { loraStreams, wrapWithLora, type LoraStreams, type WrapOptions } from '../relora/wrap.ts';
import { CHECKPOINT_VERSION, type CheckpointContent, type LoadedCheckpoint } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { phaseIndexOf, type Phase, type PhasePlan } from './phases.ts';

/** The compute backend that wrote a checkpoint. */
export interface EngineInfo {
  backend: string;
  threads: number;
  /** Processes of a data-parallel job (absent: one). */
  ranks?: number;
}

export class RunState {
  /** Updates completed in the whole run. */
  step = 0;
  /** Index of the current phase in the run's plan. */
  phaseIndex = 0;
  /** Updates completed in the current phase (its schedule position). */
  phaseStep = 0;
  tokens = 0;
  skipped = 0;
  counters: RestartCounters = emptyRestartCounters();
  /** Seconds trained by earlier processes of this run (before a resume). */
  elapsedBefore = 0;
  sampler: SequenceSampler;
  readonly lora: LoraStreams;
  /** Draws of the optimizer reset (random or magnitude pruning of the moments). */
  readonly pruneRng: RandomStream;
  optimizer: AdamW | null = null;
  /** The phase the run was resumed in: its LoRA wrap and optimizer came from the checkpoint. */
  resumedPhase: Phase | null = null;
  private clockStart = Date.now();

  /**
   * `optimizerShard`: this process's place in a data-parallel job whose optimizer state is
   * sharded (`shard_optimizer`); its optimizers keep only this process's moments.
   */
  constructor(
    private readonly cfg: TrainConfig, private readonly loraOptions: WrapOptions, private readonly sequences: number | SequenceCount,
    private readonly optimizerShard?: { rank: number; size: number },
  ) {
    this.lora = loraStreams(cfg.seed);
    this.pruneRng = RandomStream.named(cfg.seed, 'prune');
    this.sampler = this.samplerAt();
  }

  private samplerAt(state?: SamplerState): SequenceSampler {
    const shards = shardSequences(this.cfg.data_shard_tokens, this.cfg.seq_len);
    return new SequenceSampler({ numSequences: this.sequences, seed: RandomStream.named(this.cfg.seed, 'data-order').seed, shardSequences: shards, state });
  }

  /** Replace the model's target projections by LoRA layers, drawing from this run's streams. */
  wrap(model: LlamaForCausalLM): void {
    wrapWithLora(model, this.loraOptions, this.lora);
  }

  /** A fresh AdamW over the model's trainable parameters (sharded when this run's is). */
  newOptimizer(model: LlamaForCausalLM, lr: number): AdamW {
    return new AdamW(model.namedTrainableParameters(), { lr, weightDecay: this.cfg.weight_decay, shard: this.optimizerShard });
  }

  /** Time from here on counts towards `elapsed()`. */
  startClock(): void {
    this.clockStart = Date.now();
  }

  /** Seconds trained, earlier processes of this run included. */
  elapsed(): number {
    return this.elapsedBefore + (Date.now() - this.clockStart) / 1000;
  }

  /**
   * The checkpoint of this moment, saved as a checkpoint of `phase`. `moments`: every trainable
   * tensor's (a sharded optimizer's process holds only its own; rank 0 collects the others').
   */
  snapshot(model: LlamaForCausalLM, phase: Phase, engine: EngineInfo, moments: ReadonlyMap<string, AdamWState> | undefined = this.optimizer?.state): CheckpointContent {
    const optimizer: Record<string, Tensor> = {};
    for (const [name, st] of moments ?? []) { optimizer[`m.${name}`] = st.m; optimizer[`v.${name}`] = st.v; }
    return {
      model: model.stateDict(),
      optimizer,
      state: {
        version: CHECKPOINT_VERSION, step: this.step, phase, phase_step: this.phaseStep, optimizer_steps: this.optimizer?.stepCount ?? 0,
        counters: { ...this.counters }, tokens: this.tokens, elapsed: this.elapsed(), skipped: this.skipped, sampler: this.sampler.state(),
        rng: { lora_init: this.lora.init.state(), lora_dropout: this.lora.dropout.state(), prune: this.pruneRng.state() },
        engine: { backend: engine.backend, threads: engine.threads, ...(engine.ranks && engine.ranks > 1 ? { ranks: engine.ranks } : {}) },
      },
    };
  }

  /**
   * Continue from a checkpoint of this run: the weights (LoRA-wrapped when the checkpoint is),
   * every counter, the data position, the random streams and the optimizer with its moments.
   */
  restore(ck: LoadedCheckpoint, model: LlamaForCausalLM, plans: PhasePlan[]): void {
    const s = ck.state;
    this.phaseIndex = phaseIndexOf(plans, s.phase, s.step);
    if (this.phaseIndex < 0) throw new Error(`${ck.dir}: phase ${s.phase} does not occur in this run's plan (mode ${this.cfg.mode})`);
    // Wrapping draws the initial LoRA factors; the streams are set to the checkpoint's afterwards.
    if (s.phase !== 'full') this.wrap(model);
    model.loadStateDict(ck.model, true, `${ck.dir}/model.safetensors`);
    this.step = s.step;
    this.phaseStep = s.phase_step;
    this.tokens = s.tokens;
    this.elapsedBefore = s.elapsed;
    this.skipped = s.skipped;
    this.counters = { ...s.counters };
    this.sampler = this.samplerAt(s.sampler);
    setStream(this.lora.init, s.rng.lora_init);
    setStream(this.lora.dropout, s.rng.lora_dropout);
    setStream(this.pruneRng, s.rng.prune);
    this.optimizer = this.newOptimizer(model, plans[this.phaseIndex].lr);
    this.optimizer.stepCount = s.optimizer_steps;
    for (const [name, st] of this.optimizer.state) {
      const m = ck.optimizer[`m.${name}`], v = ck.optimizer[`v.${name}`];
      if (!m || !v) throw new Error(`${ck.dir}/optimizer.safetensors: no moments for ${name}`);
      st.m.data.set(m);
      st.v.data.set(v);
    }
    this.resumedPhase = s.phase;
  }

  /**
   * Start the low-rank phase from a full-rank checkpoint (`--warm-start`): its weights, update
   * count, tokens and data position; everything else starts afresh.
   */
  startFrom(ck: LoadedCheckpoint, model: LlamaForCausalLM): void {
    model.loadStateDict(ck.model, true, `${ck.dir}/model.safetensors`);
    this.sampler = this.samplerAt(ck.state.sampler);
    this.step = ck.state.step;
    this.tokens = ck.state.tokens;
  }
}

function setStream(stream: RandomStream, s: RandomState): void {
  stream.seed = s.seed;
  stream.calls = s.calls;
}
