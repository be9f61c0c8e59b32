/**
 * `relora demo`'s page in headless Chromium (Debian's chromium, driven by playwright-core; no
 * browser is downloaded): it trains through the warm start and a ReLoRA merge, the loss falls,
 * the page reports the WebGPU adapter it found (SwiftShader in CI) and samples text. The bundle
 * holds no Node module.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Server } from 'node:http';

import { chromium, type Browser } from 'playwright-core';

import { bundleDemo, startDemoServer } from '../../src/demo/server.ts';

const CHROMIUM = '/usr/bin/chromium';
let server: Server;
let url = '';
let browser: Browser;

before(async () => {
  ({ server, url } = await startDemoServer(0));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      // playwright adds --headless and a fresh profile of its own.
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
    ],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test('the bundle for the page holds no Node module', async () => {
  const { code, inputs } = await bundleDemo();
  // Only the project's own sources and the inert stand-ins for node: modules went in.
  const foreign = inputs.filter((f) => !f.startsWith('src/') && !f.startsWith('node-stand-in:node:'));
  assert.deepEqual(foreign, []);
  assert.ok(inputs.includes('src/demo/browser/page.ts') && inputs.includes('src/engine/backends/js.ts'));
  assert.doesNotMatch(code, /\bfrom\s*["']node:/, 'an import of a node: module left in the bundle');
});

test('the page trains a tiny LLaMA with ReLoRA in the tab: loss falls across a merge, text is sampled', async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // 12 warm-start updates, then two ReLoRA cycles of 8 (one merge between them).
  await page.goto(`${url}?warm=12&cycle=8&cycles=2`);
  await page.waitForFunction(() => {
    const d = (window as unknown as { reloraDemo?: { done: boolean; error: string | null } }).reloraDemo;
    return d !== undefined && (d.done || d.error !== null);
  }, undefined, { timeout: 240_000 });
  const state = await page.evaluate(() => (window as unknown as { reloraDemo: unknown }).reloraDemo) as {
    records: { update: number; phase: string; loss: number; merges: number; rank: number | null }[]; done: boolean; webgpu: string; error: string | null;
  };
  assert.equal(state.error, null);
  assert.deepEqual(errors, []);
  const r = state.records;
  assert.equal(r.length, 28);
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(r.slice(0, 4).map((x) => x.loss)), last = mean(r.slice(-4).map((x) => x.loss));
  assert.ok(last < first - 0.3, `loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
  assert.deepEqual([r[11].phase, r[12].phase], ['full', 'relora']);
  assert.equal(r[r.length - 1].merges, 1);
  // After one merge of rank-8 factors, W − W_warm_start has rank 8 (its LoRA rank).
  assert.equal(r[r.length - 1].rank, 8);
  assert.match(state.webgpu, /swiftshader|google/i, 'the page names the WebGPU adapter it found');
  assert.match(await page.textContent('#backend') ?? '', /Backend: js .* WebGPU: /);
  assert.ok(((await page.textContent('#output')) ?? '').length >= 100, 'sampled text is shown');
});
