/**
 * `relora demo`'s page in headless Chromium (Debian's chromium, driven by playwright-core; no
 * browser is downloaded). With WebGPU (SwiftShader, chromium's CPU Vulkan driver) the page trains
 * on the webgpu backend — a training worker blocking on a device worker through shared memory —
 * names the adapter, and its losses follow the js backend's update by update; without WebGPU, or
 * without cross-origin isolation, it trains on js and says why. The bundles hold no Node module.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Server } from 'node:http';

import { chromium, type Browser, type Page } from 'playwright-core';

import { bundleDemo, startDemoServer } from '../../src/demo/server.ts';
import type { DemoRecord } from '../../src/demo/trainer.ts';

const CHROMIUM = '/usr/bin/chromium';
// playwright adds --headless and a fresh profile of its own.
const BASE_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader'];

// 8 warm-start updates, then two ReLoRA cycles of 5 (one merge between them): SwiftShader takes
// about a second an update.
const RUN = 'warm=8&cycle=5&cycles=2&sample=12';
const UPDATES = 18;

interface PageRun {
  records: DemoRecord[];
  backend: 'webgpu' | 'js' | null;
  kernels: string | null;
  fallback: string | null;
  sample: string;
  error: string | null;
  isolated: boolean;
  /** What the page says about its backend (#backend). */
  says: string;
  pageErrors: string[];
}

let server: Server;
let url = '';
let webgpuBrowser: Browser;

before(async () => {
  ({ server, url } = await startDemoServer(0));
  webgpuBrowser = await chromium.launch({ executablePath: CHROMIUM, args: [...BASE_FLAGS, ...WEBGPU_FLAGS] });
});

after(async () => {
  await webgpuBrowser?.close();
  server?.close();
});

/** Opens the page with `query`, waits for the run to finish (or fail) and returns what it showed. */
async function runPage(page: Page, query: string): Promise<PageRun> {
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${url}?${query}`);
  await page.waitForFunction(() => {
    const d = (window as unknown as { reloraDemo?: { done: boolean; error: string | null } }).reloraDemo;
    return d !== undefined && (d.done || d.error !== null);
  }, undefined, { timeout: 240_000 });
  const state = await page.evaluate(() => ({ ...(window as unknown as { reloraDemo: object }).reloraDemo, isolated: crossOriginIsolated })) as Omit<PageRun, 'says' | 'pageErrors'>;
  return { ...state, says: (await page.textContent('#backend')) ?? '', pageErrors };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

test('the bundles for the page and its workers hold no Node module', async () => {
  const bundles = new Map((await bundleDemo()).map((b) => [b.name, b]));
  assert.deepEqual([...bundles.keys()].sort(), ['bundle.js', 'device.js', 'trainer.js']);
  for (const { name, code, inputs } of bundles.values()) {
    // Only the project's own sources, the inert stand-ins for node: modules and an empty
    // process.env went in; worker threads are the WebGPU bridge's browser host, never a stand-in.
    const foreign = inputs.filter((f) => !f.startsWith('src/') && !f.startsWith('node-stand-in:node:') && f !== '<define:process.env>');
    assert.deepEqual(foreign, [], name);
    assert.ok(!inputs.includes('node-stand-in:node:worker_threads'), `${name}: worker_threads was stubbed out`);
    assert.doesNotMatch(code, /\bfrom\s*["']node:/, `${name}: an import of a node: module left in the bundle`);
  }
  const has = (name: string, file: string): boolean => bundles.get(name as 'bundle.js')!.inputs.includes(file);
  assert.ok(has('bundle.js', 'src/demo/browser/page.ts'));
  for (const f of ['src/demo/browser/trainer-worker.ts', 'src/engine/backends/js.ts', 'src/engine/backends/webgpu/bridge.ts', 'src/engine/backends/webgpu/browser-threads.ts']) assert.ok(has('trainer.js', f), f);
  for (const f of ['src/demo/browser/device-worker.ts', 'src/engine/backends/webgpu/bridge-worker.ts', 'src/engine/backends/webgpu/browser-threads.ts']) assert.ok(has('device.js', f), f);
});

test('with WebGPU the page trains on it, names the adapter, and its losses follow the js backend\'s', async () => {
  const page = await webgpuBrowser.newPage();
  const gpu = await runPage(page, RUN);
  assert.equal(gpu.error, null);
  assert.deepEqual(gpu.pageErrors, []);
  assert.equal(gpu.isolated, true, 'the server makes the page cross-origin isolated');
  // The backend the training worker actually opened: never js in silence.
  assert.equal(gpu.backend, 'webgpu', `the page trained on ${gpu.backend}: ${gpu.fallback}`);
  assert.equal(gpu.fallback, null);
  assert.match(gpu.kernels ?? '', /swiftshader/i);
  assert.match(gpu.says, /^Backend: WebGPU on .*swiftshader/i, 'the page names the adapter it trains on');

  const r = gpu.records;
  assert.equal(r.length, UPDATES);
  const first = mean(r.slice(0, 4).map((x) => x.loss)), last = mean(r.slice(-4).map((x) => x.loss));
  assert.ok(last < first - 0.5, `loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
  assert.deepEqual([r[7].phase, r[8].phase], ['full', 'relora']);
  assert.equal(r[r.length - 1].merges, 1);
  // After one merge of rank-8 factors, W − W_warm_start has rank 8 (its LoRA rank).
  assert.equal(r[r.length - 1].rank, 8);
  assert.equal(gpu.sample.length, 12, 'text sampled from the model on the GPU');
  assert.equal(await page.textContent('#output'), gpu.sample);
  // The Sample button continues the user's prompt.
  await page.fill('#prompt', 'the dog ');
  await page.click('#sample');
  await page.waitForFunction((previous) => (window as unknown as { reloraDemo: { sample: string } }).reloraDemo.sample !== previous, gpu.sample, { timeout: 60_000 });
  assert.equal(((await page.textContent('#output')) ?? '').length, 12);

  // The same run on the js backend, asked for by the query: the GPU computed the same training
  // (fp32 on both; the kernels agree to about 1e-6, so 1e-3 leaves room for summation order).
  const js = await runPage(await webgpuBrowser.newPage(), `${RUN}&backend=js`);
  assert.equal(js.backend, 'js');
  assert.match(js.says, /^Backend: js .*not WebGPU: the page was opened with \?backend=js/);
  assert.equal(js.records.length, UPDATES);
  const worst = Math.max(...r.map((x, i) => Math.abs(x.loss - js.records[i].loss)));
  assert.ok(worst < 1e-3, `webgpu and js losses differ by up to ${worst}`);
});

test('without a WebGPU adapter the page trains on js and says why', async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: BASE_FLAGS });
  try {
    const run = await runPage(await browser.newPage(), 'warm=3&cycle=3&cycles=1&sample=8');
    assert.equal(run.error, null);
    assert.equal(run.backend, 'js');
    assert.match(run.fallback ?? '', /WebGPU/);
    assert.match(run.says, /^Backend: js \(TypeScript kernels on the CPU\), not WebGPU: .*(no adapter|navigator\.gpu is missing)/);
    assert.equal(run.records.length, 6);
    assert.equal(run.sample.length, 8);
  } finally {
    await browser.close();
  }
});

test('a page that is not cross-origin isolated trains on js and names the headers it needs', async () => {
  const page = await webgpuBrowser.newPage();
  // The same server's responses with the isolation headers taken out.
  await page.route('**/*', async (route) => {
    const response = await route.fetch();
    const headers = Object.fromEntries(Object.entries(response.headers()).filter(([k]) => !k.startsWith('cross-origin-')));
    await route.fulfill({ response, headers });
  });
  const run = await runPage(page, 'warm=3&cycle=3&cycles=1&sample=8');
  assert.equal(run.isolated, false);
  assert.equal(run.error, null);
  assert.equal(run.backend, 'js');
  assert.match(run.says, /not cross-origin isolated .*Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp/);
  assert.equal(run.records.length, 6);
});

test('a page served over plain http from an address other than localhost trains on js and says why', async () => {
  const page = await webgpuBrowser.newPage();
  // demo.test stands for a LAN address; its requests are answered by the demo server.
  await page.route('http://demo.test/**', async (route) => {
    const { pathname, search } = new URL(route.request().url());
    await route.fulfill({ response: await route.fetch({ url: new URL(`${pathname}${search}`, url).href }) });
  });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto('http://demo.test/?warm=3&cycle=3&cycles=1&sample=8');
  await page.waitForFunction(() => (window as unknown as { reloraDemo: { done: boolean } }).reloraDemo.done, undefined, { timeout: 120_000 });
  assert.deepEqual(pageErrors, []);
  assert.match((await page.textContent('#backend')) ?? '', /^Backend: js .*not WebGPU: .*plain http .*https or localhost/);
});

test('a bad run length in the query stops the page with a message naming it', async () => {
  const page = await webgpuBrowser.newPage();
  const run = await runPage(page, 'cycle=0');
  assert.equal(run.error, '?cycle= must be a whole number of at least 1, got "0"');
  assert.equal(run.records.length, 0);
});
