import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { register, scheduleReport } from '../src/cli/commands/schedule.ts';
import { svgLineChart } from '../src/report/chart.ts';
import { terminalPlot } from '../src/report/terminal-plot.ts';

interface RunResult {
  out: string;
  err: string;
  code: number;
}

async function run(args: string[]): Promise<RunResult> {
  const program = new Command('relora');
  let out = '';
  let err = '';
  program.exitOverride().configureOutput({
    writeOut: (s) => {
      out += s;
    },
    writeErr: (s) => {
      err += s;
    },
  });
  register(program);
  try {
    await program.parseAsync(['schedule', ...args], { from: 'user' });
    return { out, err, code: 0 };
  } catch (e) {
    if (e instanceof CommanderError) return { out, err, code: e.exitCode };
    throw e;
  }
}

test('scheduleReport: defaults give the schedule of docs/method.md and restarts after 251, 501, 751', () => {
  const r = scheduleReport({
    scheduler: 'cosine_restarts', steps: 1000, warmupSteps: 100, restartWarmupSteps: 50, cycleLength: 250, minLrRatio: 0.1,
  });
  assert.equal(r.lr_multiplier.length, 1000);
  for (const [s, want] of [[0, 0], [99, 0.99], [250, 0], [251, 0.017894], [999, 0.100003]]) {
    assert.ok(Math.abs(r.lr_multiplier[s] - want) < 1e-6, `λ(${s}) = ${r.lr_multiplier[s]}`);
  }
  assert.deepEqual(r.merges_after, [251, 501, 751]);
  assert.deepEqual(r.resets_after, [251, 501, 751]);
});

test('scheduleReport: other schedulers have no merges or resets', () => {
  for (const scheduler of ['cosine', 'linear', 'constant'] as const) {
    const r = scheduleReport({ scheduler, steps: 40, warmupSteps: 4, cycleLength: 10, restartWarmupSteps: 2 });
    assert.equal(r.lr_multiplier.length, 40);
    assert.deepEqual(r.merges_after, []);
    assert.deepEqual(r.resets_after, []);
  }
  assert.throws(() => scheduleReport({ scheduler: 'cosine_restarts', steps: 90, warmupSteps: 4, cycleLength: 20, restartWarmupSteps: 2 }),
    /steps \(90\) must be divisible by cycleLength \(20\)/);
});

test('relora schedule --json prints exactly the report for the default flags', async () => {
  const r = await run(['--json']);
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  const parsed = JSON.parse(r.out) as Record<string, unknown>;
  assert.deepEqual(Object.keys(parsed).sort(), ['lr_multiplier', 'merges_after', 'resets_after']);
  assert.deepEqual(parsed, scheduleReport({
    scheduler: 'cosine_restarts', steps: 1000, warmupSteps: 100, restartWarmupSteps: 50, cycleLength: 250, minLrRatio: 0.1,
  }));
});

test('relora schedule --json honours every flag', async () => {
  const lin = await run(['--json', '--scheduler', 'linear', '--steps', '10', '--warmup-steps', '2']);
  assert.equal(lin.code, 0);
  const l = JSON.parse(lin.out) as { lr_multiplier: number[]; merges_after: number[]; resets_after: number[] };
  const want = [0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8];
  l.lr_multiplier.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-12, `λ(${i}) = ${v}`));
  assert.deepEqual([l.merges_after, l.resets_after], [[], []]);

  const restarts = await run([
    '--json', '--steps', '60', '--warmup-steps', '5', '--restart-warmup-steps', '4', '--cycle-length', '20', '--min-lr-ratio', '0.5',
  ]);
  assert.equal(restarts.code, 0);
  const c = JSON.parse(restarts.out) as { lr_multiplier: number[]; merges_after: number[] };
  assert.deepEqual(c.merges_after, [21, 41]);
  assert.equal(c.lr_multiplier[20], 0);
  assert.ok(Math.abs(c.lr_multiplier[59] - (0.5 + 0.25 * (1 + Math.cos((Math.PI * 54) / 55)))) < 1e-12);
});

test('invalid flags: one error line on stderr, exit code 2, nothing on stdout', async () => {
  const cases: [string[], RegExp][] = [
    [['--steps', '1001'], /steps \(1001\) must be divisible by cycleLength \(250\)/],
    [['--steps', 'abc'], /'--steps <n>' argument 'abc' is invalid/],
    [['--steps', '-5'], /argument '-5' is invalid/],
    [['--warmup-steps', '300'], /warmupSteps \(300\) must be <= cycleLength \(250\)/],
    [['--restart-warmup-steps', '251'], /restartWarmupSteps \(251\) must be <= cycleLength \(250\)/],
    [['--cycle-length', '0'], /cycleLength must be an integer >= 1, got 0/],
    [['--min-lr-ratio', '0'], /minLrRatio must be in \(0, 1\], got 0/],
    [['--min-lr-ratio', 'lots'], /argument 'lots' is invalid/],
    [['--scheduler', 'step'], /Allowed choices are cosine_restarts, cosine, linear, constant/],
    [['--bogus'], /unknown option '--bogus'/],
    [['--steps'], /argument missing/],
    [['--json', '--steps', '0'], /steps must be an integer >= 1, got 0/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.out, '', args.join(' '));
    assert.match(r.err, re, args.join(' '));
    assert.match(r.err, /^error: [^\n]+\n$/, `one line for ${args.join(' ')}: ${JSON.stringify(r.err)}`);
  }
});

test('relora schedule prints a plot with restart markers and the restart updates', async () => {
  const r = await run([]);
  assert.equal(r.code, 0);
  assert.match(r.out, /^merges after updates: 251, 501, 751$/m);
  assert.match(r.out, /^optimizer resets after updates: 251, 501, 751$/m);
  assert.ok(r.out.includes('┊'), 'restart markers drawn');
  assert.ok(r.out.includes('0.00 ┼'), 'the drop to 0 is visible');

  const plain = await run(['--scheduler', 'cosine']);
  assert.match(plain.out, /^merges after updates: none$/m);
  assert.ok(!plain.out.includes('┊'));
});

test('relora schedule --plot writes an SVG with one dashed rule per restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'relora-schedule-'));
  try {
    const file = join(dir, 'lr.svg');
    const r = await run(['--json', '--plot', file]);
    assert.equal(r.code, 0);
    assert.ok(JSON.parse(r.out), 'stdout stays pure JSON');
    const svg = await readFile(file, 'utf8');
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const rules = [...svg.matchAll(/aria-label="x: (\d+)"[^>]*stroke-dasharray/g)].map((m) => Number(m[1]));
    assert.deepEqual(rules, [251, 501, 751]);

    const bad = await run(['--plot', join(dir, 'missing-dir', 'lr.svg')]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^error: cannot write the plot to .*missing-dir[^\n]*\n$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Position of the y axis in a chart row; point j of the series sits j characters right of it. */
function axisOf(row: string): number {
  return Array.from(row).findIndex((ch) => ch === '┤' || ch === '┼');
}

test('terminalPlot: one column per point, markers in empty cells of their column, x labels', () => {
  const text = terminalPlot([1, 2, 3, 2, 1], { height: 4, markers: [2], xStart: 10 });
  const rows = text.split('\n');
  assert.equal(rows.length, 5, 'height rows plus the x label row');
  const axis = axisOf(rows[0]);
  assert.ok(axis > 0);
  const chars = rows.slice(0, 4).map((r) => Array.from(r));
  // The line rises into the peak at column 2 and leaves it at column 3; the marker only fills
  // the cell of column 2 that the line leaves empty (the bottom row).
  assert.equal(chars[0][axis + 2], '╭');
  assert.equal(chars[0][axis + 3], '╮');
  assert.deepEqual(chars.map((r) => r[axis + 2]), ['╭', '│', '╯', '┊']);
  assert.ok(!rows.some((r, i) => i !== 3 && r.includes('┊')), 'no marker elsewhere');

  const flat = terminalPlot([0, 0, 0, 0, 3], { height: 4, markers: [1] }).split('\n');
  const flatAxis = axisOf(flat[0]);
  assert.deepEqual(flat.slice(0, 4).map((r) => Array.from(r)[flatAxis + 1]), ['┊', '┊', '┊', '─']);
  assert.match(rows[0], /3\.00/);
  assert.match(rows[3], /1\.00/);
  assert.equal(rows[4].trim().split(/\s+/).join(' '), '10 14');
  assert.equal(rows[4].indexOf('10'), axis);
});

test('terminalPlot buckets long series; reduce=min keeps one-point dips visible', () => {
  const values = new Array<number>(1000).fill(1);
  values[500] = 0;
  const byMin = terminalPlot(values, { width: 50, height: 5, reduce: 'min', markers: [500] }).split('\n');
  for (const row of byMin.slice(0, -1)) assert.ok(Array.from(row).length <= axisOf(row) + 50, row);
  assert.match(byMin[4], /0\.00/);
  const bottom = Array.from(byMin[4]);
  assert.notEqual(bottom[axisOf(byMin[4]) + 25], ' ', 'the dip reaches the bottom row in column 25');
  assert.equal(Array.from(byMin[2])[axisOf(byMin[2]) + 25], '│');

  const byMean = terminalPlot(values, { width: 50, height: 5 }).split('\n');
  assert.ok(!byMean.join('\n').includes('0.00'), 'a mean over 20 points hides a single zero');
});

test('terminalPlot rejects bad input with the offending value', () => {
  assert.throws(() => terminalPlot([]), /series is empty/);
  assert.throws(() => terminalPlot([1, NaN]), /index 1 is NaN/);
  assert.throws(() => terminalPlot([1, 2], { markers: [2] }), /marker 2 is not an index/);
  assert.throws(() => terminalPlot([1, 2], { height: 1 }), /height must be an integer >= 2, got 1/);
});

test('svgLineChart draws the series and rules at marker x positions', async () => {
  const svg = await svgLineChart([0, 1, 0.5], { title: 'demo', markers: [2], markerLabel: 'restart', xStart: 1 });
  assert.match(svg, /<svg/);
  assert.match(svg, />demo</);
  assert.match(svg, />dashed lines: restart</);
  assert.match(svg, /aria-label="x: 2"[^>]*stroke-dasharray/);
  await assert.rejects(svgLineChart([Infinity]), /index 0 is Infinity/);
  // Drawn by the reports' chart template: restart rules in the reports' colour, integer ticks.
  assert.match(svg, /aria-label="x: 2"[^>]*stroke="#b22222"/);
});
