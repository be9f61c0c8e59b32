/**
 * The phases of a run (docs/method.md, "Warm start" and "Learning-rate schedule"):
 *
 *   mode full   → [full × steps]
 *   mode lora   → [full × warm_start_steps] [lora × rest]
 *   mode relora → [full × warm_start_steps] [relora × rest]   (merge and reset every cycle)
 *
 * Each phase has its own AdamW and its own schedule; the data stream continues across phases.
 * By default (warm_start_schedule "run") the warm start follows the first warm_start_steps
 * updates of a cosine over the whole run, as the paper's warm start is a checkpoint of a
 * full-rank run: its learning rate is still near the peak at the switch. With "phase" it runs a
 * complete cosine of its own and ends annealed.
 */
import { makeSchedule, type SchedulerKind } from '../optim/schedule.ts';
import type { TrainConfig } from './config.ts';

export type Phase = 'full' | 'lora' | 'relora';

export interface PhasePlan {
  phase: Phase;
  /** Global step at which the phase starts. */
  start: number;
  steps: number;
  lr: number;
  scheduler: SchedulerKind;
  /** Updates the phase's schedule spans when the phase only follows its first part; default `steps`. */
  scheduleSteps?: number;
}

export function planPhases(cfg: TrainConfig): PhasePlan[] {
  if (cfg.mode === 'full') return [{ phase: 'full', start: 0, steps: cfg.steps, lr: cfg.lr, scheduler: cfg.scheduler }];
  const plans: PhasePlan[] = [];
  if (cfg.warm_start_steps > 0) {
    const span = cfg.warm_start_schedule === 'run' ? { scheduleSteps: cfg.steps } : {};
    plans.push({ phase: 'full', start: 0, steps: cfg.warm_start_steps, lr: cfg.warm_start_lr, scheduler: 'cosine', ...span });
  }
  plans.push({ phase: cfg.mode as Phase, start: cfg.warm_start_steps, steps: cfg.steps - cfg.warm_start_steps, lr: cfg.lr, scheduler: cfg.scheduler });
  return plans;
}

/**
 * The plan of a run whose full-rank warm start was done elsewhere (`--warm-start CHECKPOINT`):
 * only the low-rank phase, starting at the checkpoint's update.
 */
export function planAfterWarmStart(cfg: TrainConfig, step: number): PhasePlan[] {
  const last = planPhases(cfg).at(-1)!;
  return [{ ...last, start: step, steps: cfg.steps - step }];
}

/** Where a checkpoint of `phase` at global `step` sits in the plan. */
export function phaseIndexOf(plans: PhasePlan[], phase: Phase, step: number): number {
  const exact = plans.findIndex((p) => p.phase === phase && step >= p.start && step <= p.start + p.steps);
  return exact >= 0 ? exact : plans.findIndex((p) => p.phase === phase);
}

/** λ(phase step): the multiplier of the phase's peak learning rate. */
export function scheduleFor(cfg: TrainConfig, p: PhasePlan): (s: number) => number {
  const span = p.scheduleSteps ?? p.steps;
  return makeSchedule({
    scheduler: p.scheduler,
    steps: span,
    warmupSteps: Math.min(cfg.warmup_steps, span),
    restartWarmupSteps: cfg.restart_warmup_steps,
    cycleLength: p.scheduler === 'cosine_restarts' ? cfg.cycle_length : undefined,
    minLrRatio: cfg.min_lr_ratio,
  });
}

/** What to change when training diverges: the learning rate of the phase it diverged in. */
export function lrAdvice(cfg: TrainConfig, plan: PhasePlan): string {
  const flag = plan.phase === 'full' && cfg.mode !== 'full' ? '--warm-start-lr' : '--lr';
  return `the learning rate (${plan.lr}) is probably too high: lower ${flag}`;
}
