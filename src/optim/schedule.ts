/**
 * Learning-rate multiplier schedules (docs/method.md, "Learning-rate schedule"; Lialin et al.,
 * ReLoRA, ICLR 2024).
 *
 * `makeSchedule(cfg)` returns λ with PyTorch LambdaLR semantics: the optimizer update that
 * follows k scheduler steps uses `lr · λ(k)`, so update u (1-based) uses λ(u − 1) and the very
 * first update uses λ(0) = 0 whenever there is a warm-up.
 */

export type SchedulerKind = 'cosine_restarts' | 'cosine' | 'linear' | 'constant';

export const SCHEDULER_KINDS: readonly SchedulerKind[] = ['cosine_restarts', 'cosine', 'linear', 'constant'];

export interface ScheduleConfig {
  scheduler: SchedulerKind;
  /** N: number of update steps the schedule spans. */
  steps: number;
  /** W: length of the first linear warm-up. */
  warmupSteps: number;
  /** Wr: length of the warm-up after each restart (required for cosine_restarts). */
  restartWarmupSteps?: number;
  /** R: restart period (required for cosine_restarts). */
  cycleLength?: number;
  /** m: floor of the cosine, as a fraction of the peak; in (0, 1], default 0.1. */
  minLrRatio?: number;
}

export const DEFAULT_MIN_LR_RATIO = 0.1;

export function isSchedulerKind(s: string): s is SchedulerKind {
  return (SCHEDULER_KINDS as readonly string[]).includes(s);
}

function requireInteger(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`schedule: ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Validates `cfg` and fills defaults; throws an Error naming the offending field otherwise. */
export function validateScheduleConfig(cfg: ScheduleConfig): Required<ScheduleConfig> {
  if (!isSchedulerKind(cfg.scheduler)) {
    throw new Error(`schedule: scheduler must be one of ${SCHEDULER_KINDS.join(', ')}, got ${String(cfg.scheduler)}`);
  }
  const N = requireInteger('steps', cfg.steps, 1);
  const W = requireInteger('warmupSteps', cfg.warmupSteps, 0);
  if (W > N) throw new Error(`schedule: warmupSteps (${W}) must be <= steps (${N})`);

  const m = cfg.minLrRatio ?? DEFAULT_MIN_LR_RATIO;
  if (typeof m !== 'number' || !(m > 0 && m <= 1)) {
    throw new Error(`schedule: minLrRatio must be in (0, 1], got ${String(m)}`);
  }

  if (cfg.scheduler !== 'cosine_restarts') {
    // Irrelevant to these schedules, but a malformed value still signals a caller bug.
    const R = cfg.cycleLength === undefined ? N : requireInteger('cycleLength', cfg.cycleLength, 1);
    const Wr = cfg.restartWarmupSteps === undefined ? 0 : requireInteger('restartWarmupSteps', cfg.restartWarmupSteps, 0);
    return { scheduler: cfg.scheduler, steps: N, warmupSteps: W, restartWarmupSteps: Wr, cycleLength: R, minLrRatio: m };
  }

  if (cfg.cycleLength === undefined) throw new Error('schedule: cycleLength is required for scheduler cosine_restarts');
  if (cfg.restartWarmupSteps === undefined) {
    throw new Error('schedule: restartWarmupSteps is required for scheduler cosine_restarts');
  }
  const R = requireInteger('cycleLength', cfg.cycleLength, 1);
  const Wr = requireInteger('restartWarmupSteps', cfg.restartWarmupSteps, 0);
  if (N % R !== 0) throw new Error(`schedule: steps (${N}) must be divisible by cycleLength (${R})`);
  if (W > R) throw new Error(`schedule: warmupSteps (${W}) must be <= cycleLength (${R})`);
  if (Wr > R) throw new Error(`schedule: restartWarmupSteps (${Wr}) must be <= cycleLength (${R})`);
  return { scheduler: 'cosine_restarts', steps: N, warmupSteps: W, restartWarmupSteps: Wr, cycleLength: R, minLrRatio: m };
}

/**
 * λ(s) for s = 0 … steps. s = steps is allowed because a LambdaLR-style scheduler evaluates it
 * once more after the last update; anything else outside that range is a caller bug.
 */
export function makeSchedule(cfg: ScheduleConfig): (s: number) => number {
  const c = validateScheduleConfig(cfg);
  const { steps: N, warmupSteps: W, restartWarmupSteps: Wr, cycleLength: R, minLrRatio: m } = c;

  // With W = N the decay phase is the single point s = N, where progress is complete.
  const progress = (t: number): number => (N > W ? t / (N - W) : 1);
  const cosEnv = (p: number): number => m + (1 - m) * 0.5 * (1 + Math.cos(Math.PI * p));

  const body = ((): ((s: number) => number) => {
    switch (c.scheduler) {
      case 'constant':
        return () => 1;
      case 'linear':
        // Same as Hugging Face get_linear_schedule_with_warmup.
        return (s) => Math.max(0, (N - s) / Math.max(1, N - W));
      case 'cosine':
        return (s) => cosEnv(progress(s - W));
      case 'cosine_restarts':
        return (s) => {
          const rs = s % R;
          const rn = Math.floor(s / R);
          if (rs < Wr && s >= R) return (rs / Wr) * cosEnv(progress(rn * R + Wr - W));
          return cosEnv(progress(s - W));
        };
    }
  })();

  return (s: number): number => {
    if (!Number.isInteger(s) || s < 0 || s > N) {
      throw new RangeError(`schedule: step must be an integer in [0, ${N}], got ${s}`);
    }
    if (s < W) return s / W;
    return body(s);
  };
}
