import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyRestartCounters, isRestartAfter, restartsAfter } from '../src/relora/restarts.ts';
import { makeSchedule } from '../src/optim/schedule.ts';

test('N = 1000, R = 250: restarts after updates 251, 501, 751', () => {
  assert.deepEqual(restartsAfter(1000, 250), [251, 501, 751]);
});

test('isRestartAfter agrees with restartsAfter and the rule of docs/method.md', () => {
  for (const [N, R] of [[1000, 250], [30, 7], [12, 1], [5, 5]]) {
    const listed = new Set(restartsAfter(N, R));
    for (let u = 1; u <= N; u++) {
      assert.equal(isRestartAfter(u, R), listed.has(u), `u=${u}, R=${R}`);
      assert.equal(listed.has(u), u > R && (u - 1) % R === 0, `u=${u}, R=${R}`);
    }
  }
  assert.deepEqual(restartsAfter(12, 1), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual(restartsAfter(5, 5), []);
  assert.deepEqual(restartsAfter(0, 5), []);
});

test('each restart follows the update that used a zero learning rate', () => {
  const lambda = makeSchedule({
    scheduler: 'cosine_restarts', steps: 1000, warmupSteps: 100, restartWarmupSteps: 50, cycleLength: 250,
  });
  for (const u of restartsAfter(1000, 250)) assert.equal(lambda(u - 1), 0, `update ${u} uses λ(${u - 1})`);
});

test('bad arguments are rejected with the value', () => {
  assert.throws(() => restartsAfter(1000, 0), /cycleLength must be an integer >= 1, got 0/);
  assert.throws(() => restartsAfter(-1, 10), /steps must be an integer >= 0, got -1/);
  assert.throws(() => isRestartAfter(0, 10), /u must be an integer >= 1, got 0/);
  assert.throws(() => isRestartAfter(3, 2.5), /got 2.5/);
});

test('counters start at zero', () => {
  assert.deepEqual(emptyRestartCounters(), { merges: 0, resets: 0 });
});
