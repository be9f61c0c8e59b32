/**
 * The warm start's learning rate (docs/method.md, "Warm start"): by default the full-rank phase
 * follows the first part of one cosine over the whole run, so at the switch the learning rate is
 * still near its peak; `warm_start_schedule: phase` keeps the older complete cosine of its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runScheduleReport } from '../src/cli/commands/schedule.ts';
import { makeSchedule } from '../src/optim/schedule.ts';
import { resolveConfig } from '../src/train/config.ts';
import { planPhases, scheduleFor } from '../src/train/phases.ts';

const base = { mode: 'relora', steps: 1000, warm_start_steps: 200, cycle_length: 200, warmup_steps: 30, min_lr_ratio: 0.1, lr: 4e-3 };

test('default warm start: the first 200 updates of a cosine over all 1000, near its peak at the switch', () => {
  const cfg = resolveConfig(base);
  assert.equal(cfg.warm_start_schedule, 'run');
  const [warm, low] = planPhases(cfg);
  assert.equal(warm.phase, 'full');
  assert.equal(warm.steps, 200);
  assert.equal(warm.lr, 2e-3);
  const lambda = scheduleFor(cfg, warm);
  const whole = makeSchedule({ scheduler: 'cosine', steps: 1000, warmupSteps: 30, minLrRatio: 0.1 });
  for (const s of [0, 1, 29, 30, 100, 199]) assert.equal(lambda(s), whole(s), `λ(${s})`);
  // Update 200, the last of the warm start: env(169/970) = 0.1 + 0.45·(1 + cos(0.1742·π)).
  assert.ok(Math.abs(lambda(199) - (0.1 + 0.45 * (1 + Math.cos((Math.PI * 169) / 970)))) < 1e-12);
  assert.ok(lambda(199) > 0.9, `λ at the switch ${lambda(199)}`);
  // The low-rank phase keeps its own jagged schedule over the remaining 800 updates.
  assert.deepEqual([low.phase, low.start, low.steps, low.scheduleSteps], ['relora', 200, 800, undefined]);
});

test('warm_start_schedule phase: the warm start anneals to min_lr_ratio by the switch (the older behaviour)', () => {
  const cfg = resolveConfig({ ...base, warm_start_schedule: 'phase' });
  const [warm] = planPhases(cfg);
  const lambda = scheduleFor(cfg, warm);
  const own = makeSchedule({ scheduler: 'cosine', steps: 200, warmupSteps: 30, minLrRatio: 0.1 });
  for (const s of [0, 30, 100, 199]) assert.equal(lambda(s), own(s));
  assert.ok(lambda(199) < 0.11, `λ at the switch ${lambda(199)}`);
});

test('warm_start_schedule is validated and refused in mode full', () => {
  assert.throws(() => resolveConfig({ ...base, warm_start_schedule: 'whole' }), /warm_start_schedule: .*"run"\|"phase" \(got "whole"\)/);
  assert.throws(() => resolveConfig({ mode: 'full', warm_start_schedule: 'run' }), /warm_start_schedule: only meaningful with mode lora or relora/);
});

test('relora schedule --warm-start-steps: the whole run, warm start at its ratio of the peak, merges at global updates', () => {
  const cfg = { scheduler: 'cosine_restarts' as const, steps: 1000, warmupSteps: 30, restartWarmupSteps: 20, cycleLength: 200, minLrRatio: 0.1 };
  const run = runScheduleReport(cfg, { steps: 200, schedule: 'run', lrRatio: 0.5 });
  assert.equal(run.lr_multiplier.length, 1000);
  assert.deepEqual(run.merges_after, [401, 601, 801]);
  const whole = makeSchedule({ scheduler: 'cosine', steps: 1000, warmupSteps: 30, minLrRatio: 0.1 });
  assert.equal(run.lr_multiplier[199], 0.5 * whole(199));
  // The low-rank phase starts from 0 and warms up to its own peak of 1.
  assert.equal(run.lr_multiplier[200], 0);
  assert.ok(Math.abs(run.lr_multiplier[230] - 1) < 1e-12);
  const own = runScheduleReport(cfg, { steps: 200, schedule: 'phase', lrRatio: 0.5 });
  assert.ok(Math.abs(own.lr_multiplier[199] - 0.05) < 1e-3, `annealed warm start ends at ${own.lr_multiplier[199]}`);
  assert.deepEqual(own.lr_multiplier.slice(200), run.lr_multiplier.slice(200));
  assert.throws(() => runScheduleReport({ ...cfg, cycleLength: 300 }, { steps: 200, schedule: 'run', lrRatio: 0.5 }), /divisible by cycleLength/);
});
