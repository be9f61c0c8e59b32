import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeSchedule, type ScheduleConfig } from '../src/optim/schedule.ts';

const SPEC: ScheduleConfig = {
  scheduler: 'cosine_restarts',
  steps: 1000,
  warmupSteps: 100,
  restartWarmupSteps: 50,
  cycleLength: 250,
  minLrRatio: 0.1,
};

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: expected ${expected}, got ${actual}`);
}

test('cosine_restarts matches the values of docs/method.md (checked against the reference) to 1e-6', () => {
  const vectors: [number, number][] = [
    [0, 0], [1, 0.01], [99, 0.99], [100, 1], [249, 0.940494], [250, 0], [251, 0.017894],
    [275, 0.44736], [300, 0.89472], [500, 0], [501, 0.011], [999, 0.100003],
  ];
  const lambda = makeSchedule(SPEC);
  for (const [s, want] of vectors) close(lambda(s), want, 1e-6, `λ(${s})`);
});

test('cosine_restarts: every restart starts at 0 and warms up linearly to the cosine envelope', () => {
  const lambda = makeSchedule(SPEC);
  const env = (p: number) => 0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * p));
  for (const k of [1, 2, 3]) {
    const start = 250 * k;
    assert.equal(lambda(start), 0);
    const peak = env((start + 50 - 100) / 900);
    close(lambda(start + 25), 0.5 * peak, 1e-12, `mid warm-up of restart ${k}`);
    close(lambda(start + 50), peak, 1e-12, `end of warm-up of restart ${k}`);
  }
});

test('cosine: warm-up then a single cosine from 1 down to m', () => {
  const lambda = makeSchedule({ scheduler: 'cosine', steps: 1000, warmupSteps: 100, minLrRatio: 0.1 });
  close(lambda(50), 0.5, 1e-12, 'λ(50)');
  close(lambda(100), 1, 1e-12, 'λ(100)');
  close(lambda(550), 0.55, 1e-12, 'λ(550), half way');
  close(lambda(1000), 0.1, 1e-12, 'λ(N)');
  // No restarts: strictly decreasing after the warm-up.
  for (let s = 101; s <= 1000; s++) assert.ok(lambda(s) < lambda(s - 1), `decreasing at ${s}`);
});

test('linear: warm-up then linear decay to 0 at N (Hugging Face semantics)', () => {
  const lambda = makeSchedule({ scheduler: 'linear', steps: 200, warmupSteps: 40 });
  close(lambda(10), 0.25, 1e-12, 'λ(10)');
  close(lambda(40), 1, 1e-12, 'λ(40)');
  close(lambda(120), 0.5, 1e-12, 'λ(120)');
  close(lambda(199), 1 / 160, 1e-12, 'λ(199)');
  assert.equal(lambda(200), 0);
});

test('constant: warm-up then 1; no warm-up means 1 from the start', () => {
  const lambda = makeSchedule({ scheduler: 'constant', steps: 10, warmupSteps: 4 });
  assert.deepEqual([0, 1, 2, 3, 4, 9].map(lambda), [0, 0.25, 0.5, 0.75, 1, 1]);
  const flat = makeSchedule({ scheduler: 'constant', steps: 10, warmupSteps: 0 });
  assert.equal(flat(0), 1);
});

test('warmupSteps equal to steps is allowed and gives m at s = N for cosine', () => {
  const lambda = makeSchedule({ scheduler: 'cosine', steps: 10, warmupSteps: 10, minLrRatio: 0.2 });
  close(lambda(9), 0.9, 1e-12, 'λ(9)');
  close(lambda(10), 0.2, 1e-12, 'λ(10)');
});

test('precondition errors name the field and the value', () => {
  const bad: [Partial<ScheduleConfig>, RegExp][] = [
    [{ steps: 1001 }, /steps \(1001\) must be divisible by cycleLength \(250\)/],
    [{ warmupSteps: 251 }, /warmupSteps \(251\) must be <= cycleLength \(250\)/],
    [{ restartWarmupSteps: 251 }, /restartWarmupSteps \(251\) must be <= cycleLength \(250\)/],
    [{ cycleLength: 0 }, /cycleLength must be an integer >= 1, got 0/],
    [{ cycleLength: -250 }, /cycleLength must be an integer >= 1, got -250/],
    [{ cycleLength: undefined }, /cycleLength is required for scheduler cosine_restarts/],
    [{ restartWarmupSteps: undefined }, /restartWarmupSteps is required/],
    [{ minLrRatio: 0 }, /minLrRatio must be in \(0, 1\], got 0/],
    [{ minLrRatio: 1.5 }, /minLrRatio must be in \(0, 1\], got 1.5/],
    [{ minLrRatio: Number.NaN }, /minLrRatio must be in \(0, 1\], got NaN/],
    [{ steps: 0 }, /steps must be an integer >= 1, got 0/],
    [{ steps: 12.5 }, /steps must be an integer >= 1, got 12.5/],
    [{ warmupSteps: -1 }, /warmupSteps must be an integer >= 0, got -1/],
    [{ warmupSteps: 1.5 }, /warmupSteps must be an integer >= 0, got 1.5/],
    [{ restartWarmupSteps: -3 }, /restartWarmupSteps must be an integer >= 0, got -3/],
    [{ scheduler: 'cyclic' as never }, /scheduler must be one of cosine_restarts, cosine, linear, constant, got cyclic/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(() => makeSchedule({ ...SPEC, ...patch }), re, JSON.stringify(patch));
  }
  assert.throws(
    () => makeSchedule({ scheduler: 'linear', steps: 10, warmupSteps: 11 }),
    /warmupSteps \(11\) must be <= steps \(10\)/,
  );
  // Divisibility by the cycle length only constrains the restart schedule.
  assert.doesNotThrow(() => makeSchedule({ scheduler: 'cosine', steps: 1001, warmupSteps: 100, cycleLength: 250 }));
});

test('λ rejects steps outside [0, N] and non-integer steps', () => {
  const lambda = makeSchedule(SPEC);
  assert.equal(lambda(1000), 0); // N itself is a restart point
  assert.throws(() => lambda(-1), /step must be an integer in \[0, 1000\], got -1/);
  assert.throws(() => lambda(1001), /got 1001/);
  assert.throws(() => lambda(2.5), /got 2.5/);
});
