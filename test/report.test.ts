import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Command } from 'commander';
import { register } from '../src/cli/commands/report.ts';
import type { MetricRecord, TrainRecord } from '../src/train/metrics.ts';
import { thin } from '../src/report/chart.ts';
import { writeComparisonReport } from '../src/report/comparison.ts';
import { escapeHtml, scopeIds } from '../src/report/html.ts';
import { loadRun } from '../src/report/run-data.ts';
import { writeRunReport } from '../src/report/run-report.ts';
import { formatBytes, formatDuration } from '../src/train/units.ts';

const FIXTURE = new URL('./fixtures/report/run/', import.meta.url).pathname;
const RESTART_STROKE = 'stroke="#b22222"';

let tmp: string;
let fixture: MetricRecord[];

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'relora-report-'));
  fixture = (await readFile(join(FIXTURE, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as MetricRecord);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const count = (records: MetricRecord[], type: MetricRecord['type']) => records.filter((r) => r.type === type).length;

/** A copy of the fixture run (a report writes into its run folder), with its records changed by `edit`. */
async function runFolder(name: string, edit: (records: MetricRecord[]) => MetricRecord[] = (r) => r): Promise<string> {
  const dir = join(tmp, name);
  await cp(FIXTURE, dir, { recursive: true });
  await writeFile(join(dir, 'metrics.jsonl'), edit(fixture).map((r) => `${JSON.stringify(r)}\n`).join(''));
  return dir;
}

/** Occurrences of `needle` in `text`. */
function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/** Elements with the given stroke colour, and the data points (symbols) Vega drew. */
function lines(svg: string, stroke: string): number {
  return (svg.match(/<line [^>]*>/g) ?? []).filter((l) => l.includes(stroke)).length;
}
function points(svg: string): number {
  return occurrences(svg, 'aria-roledescription="point"');
}

/** Checks that every tag is closed in order: enough to catch truncated or mangled SVG. */
function assertWellFormed(xml: string, what: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (!closing) stack.push(name);
    else assert.equal(stack.pop(), name, `${what}: </${name}> closes the wrong element`);
  }
  assert.deepEqual(stack, [], `${what}: unclosed elements`);
}

test('fixture run has the shape the assertions below rely on', () => {
  assert.equal(count(fixture, 'train'), 60);
  assert.equal(count(fixture, 'eval'), 6);
  assert.equal(count(fixture, 'restart'), 2);
  assert.equal(count(fixture, 'rank'), 9);
});

test('writeRunReport: report.html with the charts inline and as plots/*.svg', async () => {
  const dir = await runFolder('full');
  const { html, plots } = await writeRunReport(dir);
  assert.equal(html, join(dir, 'report.html'));
  assert.deepEqual(plots.map((p) => basename(p)), ['loss.svg', 'lr.svg', 'throughput.svg', 'rank-growth.svg', 'spectra.svg']);
  const page = await readFile(html, 'utf8');
  assertWellFormed(page.replace(/<!DOCTYPE html>|<meta [^>]*>/g, ''), 'report.html');
  assert.equal(occurrences(page, '<svg '), 5, 'one inline SVG per chart');

  const svgs: Record<string, string> = {};
  for (const p of plots) svgs[basename(p, '.svg')] = await readFile(p, 'utf8');
  for (const [name, svg] of Object.entries(svgs)) {
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* viewBox="[^"]+"/, `${name}.svg is an SVG document`);
    assert.ok(svg.endsWith('</svg>'), `${name}.svg is complete`);
    assertWellFormed(svg, `${name}.svg`);
  }
  // Restart rules at both restarts on every chart over update steps; none on the others.
  for (const name of ['loss', 'lr', 'throughput']) assert.equal(lines(svgs[name], RESTART_STROKE), 2, `${name}: restart rules`);
  assert.equal(lines(svgs['rank-growth'], RESTART_STROKE), 0);
  assert.match(svgs.loss, /aria-label="x: 20"[^>]*#b22222/);
  assert.match(svgs.loss, /aria-label="x: 40"[^>]*#b22222/);
  // Evaluations are drawn as markers; the training loss as a line.
  assert.equal(points(svgs.loss), 6);
  assert.match(svgs.loss, /series: validation loss/);
  assert.match(svgs.loss, />validation loss<\/text>/, 'legend entry');
  assert.equal(points(svgs.lr), 0);
  // Rank growth: one marker per (module, record), the r line and the merges × r bound.
  assert.equal(points(svgs['rank-growth']), 9);
  assert.match(svgs['rank-growth'], /LoRA rank r = 4/);
  assert.match(svgs['rank-growth'], /upper bound: merged LoRA updates × r/);
  // Spectra: the three modules of the last record, on a log axis with the 1% threshold.
  for (const m of ['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.up_proj', 'model.layers.1.self_attn.v_proj']) {
    assert.match(svgs.spectra, new RegExp(m.replace(/\./g, '\\.')));
  }
  assert.match(svgs.spectra, /1% of the largest/);
  assert.match(svgs.spectra, />1e-2</);
});

test('writeRunReport: the page is self-contained and escapes config values', async () => {
  const dir = await runFolder('offline');
  const page = await readFile((await writeRunReport(dir)).html, 'utf8');
  assert.doesNotMatch(page, /<script|<link|<img|<iframe|@import/i);
  const urls = [...page.matchAll(/(?:href|src)="([^"]*)"|url\((?!#)([^)]*)\)/g)].map((m) => m[1] ?? m[2]);
  assert.ok(urls.every((u) => u.startsWith('plots/')), `only links to the local SVG files, got ${urls.join(', ')}`);
  // Each inline chart's element ids are its own.
  const ids = [...page.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, 'ids are unique across the inline SVGs');
  for (const m of page.matchAll(/url\(#([^)]+)\)/g)) assert.ok(ids.includes(m[1]), `url(#${m[1]}) refers to an element of the page`);
  // config.json as key/value rows, nested keys dotted, HTML in values escaped.
  assert.match(page, /<td>relora\.r<\/td><td>4<\/td>/);
  assert.match(page, /<td>optim\.betas<\/td><td>\[0\.9,0\.999\]<\/td>/);
  assert.ok(page.includes('&lt;script&gt;alert(&quot;not escaped&quot;)&lt;/script&gt;'));
  assert.ok(page.includes('&lt;brown&gt; &amp; &quot;friends&quot;'));
  // summary.json and the figures taken from metrics.jsonl.
  assert.match(page, /<td>final_eval_ppl<\/td><td>50\.9<\/td>/);
  assert.match(page, /<td>peak_rss_mb<\/td><td>412<\/td>/);
  assert.match(page, /<td>updates<\/td><td>60<\/td>/);
  assert.match(page, /<td>restarts \(merge \+ reset\)<\/td><td>2<\/td>/);
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('writeRunReport: a full-rank run without evaluations, restarts or rank records', async () => {
  const dir = await runFolder('full-rank', (rs) => rs.filter((r) => r.type === 'train'));
  const { html, plots } = await writeRunReport(dir);
  assert.deepEqual(plots.map((p) => basename(p)), ['loss.svg', 'lr.svg', 'throughput.svg']);
  const loss = await readFile(plots[0], 'utf8');
  assert.equal(lines(loss, RESTART_STROKE), 0);
  assert.equal(points(loss), 0);
  assert.doesNotMatch(loss, />validation loss<\/text>/, 'an empty series has no legend entry');
  const page = await readFile(html, 'utf8');
  assert.match(page, /No evaluations were recorded/);
  assert.match(page, /No rank records in metrics\.jsonl/);
  assert.equal(occurrences(page, '<svg '), 3);
  await assert.rejects(stat(join(dir, 'plots', 'rank-growth.svg')));
});

test('writeRunReport: a torn last line, an empty metrics file, no config or summary', async () => {
  const torn = await runFolder('torn');
  await appendFile(join(torn, 'metrics.jsonl'), '{"type":"train","step":61,"phase":"rel');
  const page = await readFile((await writeRunReport(torn)).html, 'utf8');
  assert.match(page, /<td>updates<\/td><td>60<\/td>/);

  const empty = await runFolder('empty', () => []);
  await rm(join(empty, 'config.json'));
  await rm(join(empty, 'summary.json'));
  const { html, plots } = await writeRunReport(empty);
  assert.deepEqual(plots, []);
  const emptyPage = await readFile(html, 'utf8');
  assert.match(emptyPage, /no train records yet/);
  assert.match(emptyPage, /no config\.json/);
  assert.match(emptyPage, /no summary\.json/);
});

test('writeRunReport: many modules are shown as their mean and min–max band', async () => {
  const dir = await runFolder('many-modules', (rs) =>
    rs.flatMap((r): MetricRecord[] => (r.type === 'rank' ? Array.from({ length: 4 }, (_, k) => ({ ...r, module: `${r.module}.copy${k}` })) : [r])));
  const { plots } = await writeRunReport(dir);
  const rank = await readFile(plots[3], 'utf8');
  assert.match(rank, /mean of 12 modules/);
  assert.match(rank, /mark-area role-mark/);
  assert.equal(points(rank), 3, 'one mean marker per record step');
  const spectra = await readFile(plots[4], 'utf8');
  assert.equal(occurrences(spectra, 'role-legend-label'), 4, 'four of the twelve modules in the spectra');
  assert.equal((spectra.match(/\.copy\d<\/text>/g) ?? []).length, 4);
});

test('loadRun: the later record of a step wins (a resumed run) and order is by step', async () => {
  const resumed = fixture.filter((r): r is TrainRecord => r.type === 'train' && r.step <= 30);
  const again = fixture.filter((r) => r.type === 'train' && r.step > 20).map((r) => ({ ...r, loss: 1 }));
  const dir = await runFolder('resumed', () => [...resumed, ...again]);
  const run = await loadRun(dir);
  assert.equal(run.train.length, 60);
  assert.deepEqual(run.train.map((r) => r.step), Array.from({ length: 60 }, (_, i) => i + 1));
  assert.equal(run.train[19].loss, resumed[19].loss, 'steps before the resume point keep their records');
  assert.ok(run.train.slice(20).every((r) => r.loss === 1));
});

test('missing folder, missing metrics file, malformed config: errors name the path', async () => {
  const nowhere = join(tmp, 'no-such-run');
  await assert.rejects(writeRunReport(nowhere), (e: Error) => e.message.includes(nowhere) && /no such run folder/.test(e.message));
  const bare = join(tmp, 'bare');
  await cp(FIXTURE, bare, { recursive: true });
  await rm(join(bare, 'metrics.jsonl'));
  await assert.rejects(writeRunReport(bare), (e: Error) => e.message.includes(join(bare, 'metrics.jsonl')));
  const badConfig = await runFolder('bad-config');
  await writeFile(join(badConfig, 'config.json'), '{"steps": 60,');
  await assert.rejects(writeRunReport(badConfig), (e: Error) => e.message.includes(join(badConfig, 'config.json')) && /not valid JSON/.test(e.message));
  await writeFile(join(badConfig, 'config.json'), '[1, 2]');
  await assert.rejects(writeRunReport(badConfig), /expected a JSON object, got an array/);
  const badStep = await runFolder('bad-step', (rs) => [...rs.slice(0, 3), { ...rs[3], step: 'x' as unknown as number }]);
  await assert.rejects(writeRunReport(badStep), /record 4 \(type "train"\) has step "x", expected a number/);
});

test('scopeIds: element ids and their url(#…) references get the chart\'s prefix', () => {
  const svg = '<svg><defs><clipPath id="clip1"><rect/></clipPath></defs><g clip-path="url(#clip1)" fill="url(#gradient_0)"/></svg>';
  assert.equal(scopeIds(svg, 'loss'),
    '<svg><defs><clipPath id="loss-clip1"><rect/></clipPath></defs><g clip-path="url(#loss-clip1)" fill="url(#loss-gradient_0)"/></svg>');
});

test('thin: long series keep their extremes and stay under the limit', () => {
  const pts = Array.from({ length: 10_000 }, (_, i) => ({ x: i, y: Math.sin(i / 50) + (i === 4321 ? 5 : 0) }));
  const out = thin(pts, 1000);
  assert.ok(out.length <= 1000 && out.length > 900, `got ${out.length} points`);
  assert.ok(out.some((p) => p.x === 4321), 'the spike survives');
  assert.ok(out.every((p, i) => i === 0 || p.x > out[i - 1].x), 'x stays increasing');
  assert.equal(Math.min(...out.map((p) => p.y)), Math.min(...pts.map((p) => p.y)));
  assert.deepEqual(thin(pts.slice(0, 10), 1000), pts.slice(0, 10));
});

test('writeComparisonReport: overlays the runs and tabulates their summaries', async () => {
  const a = await runFolder('cmp-a');
  const b = await runFolder('cmp-b', (rs) => rs.filter((r) => r.type === 'train' || (r.type === 'eval' && r.step <= 30)));
  await writeFile(join(b, 'summary.json'), JSON.stringify({ final_eval_ppl: 61.2, note: 'full <rank>' }));
  const out = join(tmp, 'cmp-out');
  const { html, plots } = await writeComparisonReport(out, [{ label: 'relora r=4', dir: a }, { label: 'full <baseline>', dir: b }]);
  assert.equal(html, join(out, 'comparison.html'));
  assert.deepEqual(plots.map((p) => basename(p)), ['compare-val-loss.svg', 'compare-train-loss.svg']);
  const page = await readFile(html, 'utf8');
  assert.ok(page.includes('relora r=4'));
  assert.ok(page.includes('full &lt;baseline&gt;'));
  assert.doesNotMatch(page, /<script/);
  assert.equal(occurrences(page, '<svg '), 2);
  assert.match(page, /<td>summary: final_eval_ppl<\/td><td>50\.9<\/td><td>61\.2<\/td>/);
  assert.match(page, /<td>summary: peak_rss_mb<\/td><td>412<\/td><td>—<\/td>/);
  assert.match(page, /<td>summary: note<\/td><td>—<\/td><td>full &lt;rank&gt;<\/td>/);
  const val = await readFile(plots[0], 'utf8');
  assert.equal(points(val), 6 + 3, 'every evaluation of both runs');
  assert.match(val, /series: relora r=4/);
  assert.match(val, /series: full &lt;baseline&gt;/);
  const train = await readFile(plots[1], 'utf8');
  assert.equal(occurrences(train, 'aria-roledescription="line mark"'), 2, 'one line per run');

  await assert.rejects(writeComparisonReport(out, []), /no runs given/);
  await assert.rejects(writeComparisonReport(out, [{ label: 'x', dir: a }, { label: 'x', dir: b }]), /label "x" is used twice/);
  await assert.rejects(writeComparisonReport(out, [{ label: 'x', dir: join(tmp, 'gone') }]), /gone: no such run folder/);
});

test('relora report RUN_DIR prints where the report is; errors propagate', async () => {
  const dir = await runFolder('cli');
  const program = new Command('relora');
  let out = '';
  program.exitOverride().configureOutput({ writeOut: (s) => { out += s; }, writeErr: () => {} });
  register(program);
  await program.parseAsync(['report', dir], { from: 'user' });
  assert.match(out, new RegExp(`report written to .*${join(basename(dir), 'report\\.html')}`));
  assert.match(out, /5 SVG charts in .*plots/);
  await stat(join(dir, 'report.html'));
  await assert.rejects(program.parseAsync(['report', join(tmp, 'nope')], { from: 'user' }), /nope: no such run folder/);
});

test('writeRunReport: one summary table, metrics figures first, bytes and times in human units', async () => {
  const dir = await runFolder('units');
  await writeFile(join(dir, 'summary.json'), JSON.stringify({
    steps: 60, tokens: 245760, elapsed_s: 4000, merges: 2, resets: 2, final_eval_ppl: 50.9,
    tokens_per_s: 1398.2, peak_rss_bytes: 1.5 * 2 ** 30, state_bytes: 3 * 2 ** 20 + 2 ** 19,
  }));
  const page = await readFile((await writeRunReport(dir)).html, 'utf8');
  assert.doesNotMatch(page, /At a glance/);
  assert.equal(occurrences(page, '<h2>Summary</h2>'), 1);
  const summary = page.slice(page.indexOf('<h2>Summary</h2>'), page.indexOf('</table>', page.indexOf('<h2>Summary</h2>')));
  // metrics.jsonl's elapsed seconds (60 updates × 3.1 s) as minutes and seconds.
  assert.match(summary, /<td>elapsed<\/td><td>3 min 06 s<\/td>/);
  assert.match(summary, /<td>peak_rss_bytes<\/td><td>1\.50 GiB<\/td>/);
  assert.match(summary, /<td>state_bytes<\/td><td>3\.50 MiB<\/td>/);
  assert.match(summary, /<td>tokens_per_s<\/td><td>1398\.2<\/td>/, 'a rate is not a duration');
  // Figures metrics.jsonl already shows are not repeated from summary.json.
  for (const key of ['steps', 'tokens', 'elapsed_s', 'merges', 'resets']) assert.doesNotMatch(summary, new RegExp(`<td>${key}</td>`));
  assert.ok(summary.indexOf('<td>updates</td>') < summary.indexOf('<td>final_eval_ppl</td>'));
});

test('formatBytes and formatDuration', () => {
  assert.equal(formatBytes(412), '412 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(6363 * 2 ** 20), '6.21 GiB');
  assert.equal(formatDuration(42.25), '42.3 s');
  assert.equal(formatDuration(186), '3 min 06 s');
  assert.equal(formatDuration(3 * 3600 + 5 * 60 + 20), '3 h 05 min');
});
