/**
 * `relora demo`'s server: bundles the page and its two workers (./browser/) with esbuild for the
 * browser and serves them on localhost, cross-origin isolated (COOP/COEP), since the WebGPU bridge
 * between the workers blocks on a SharedArrayBuffer. The engine's Node-only corners (the native
 * addon's loader) are in the import graph but never run in a browser, so every `node:` module is
 * replaced by an inert stand-in, except `node:worker_threads`, which the WebGPU bridge uses and
 * which becomes its browser host (engine/backends/webgpu/browser-threads.ts): no Node module
 * reaches a bundle.
 */
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';

const HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>relora demo: ReLoRA in a browser tab</title>
<style>body{font:14px system-ui,sans-serif;max-width:760px;margin:2em auto;color:#222}canvas{border:1px solid #ddd}#output{white-space:pre-wrap;font-family:monospace;background:#f6f6f6;padding:.5em;min-height:3em}</style>
</head><body>
<h1>ReLoRA in a browser tab</h1>
<p>A 2-layer LLaMA (width 64) learns the characters of a short built-in text: a full-rank warm start, then
ReLoRA — low-rank factors trained for a cycle, merged into the weights, re-drawn, the optimizer's moments
reset — so the accumulated update grows past the LoRA rank (Lialin et al., ReLoRA, ICLR 2024).</p>
<p id="backend">choosing a backend…</p>
<p id="stats">starting…</p>
<canvas id="curve" width="720" height="240"></canvas>
<p>Grey lines: merges. <input id="prompt" value="the cat "> <button id="sample">Sample</button></p>
<div id="output"></div>
<script src="bundle.js"></script>
</body></html>`;

const NODE_NAMES = ['join', 'dirname', 'resolve', 'fileURLToPath', 'pathToFileURL', 'existsSync', 'readFileSync', 'createRequire'];

// From the sources (tsx) the modules are .ts files; in the compiled package, .js.
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const source = (relative: string): string => fileURLToPath(new URL(`${relative}${EXT}`, import.meta.url));

/** The page's script, and the module workers it starts: served under these names. */
const ENTRIES = {
  'bundle.js': { entry: './browser/page', format: 'iife' },
  'trainer.js': { entry: './browser/trainer-worker', format: 'esm' },
  'device.js': { entry: './browser/device-worker', format: 'esm' },
} as const;

export interface DemoBundle {
  /** The name the page loads it by. */
  name: keyof typeof ENTRIES;
  code: string;
  /** Every module that went in (esbuild's metafile): source files and `node-stand-in:` stand-ins. */
  inputs: string[];
}

/** The page's script and its workers' scripts: each one self-contained browser bundle. */
export async function bundleDemo(): Promise<DemoBundle[]> {
  const esbuild = await import('esbuild');
  const threads = source('../engine/backends/webgpu/browser-threads');
  return Promise.all(Object.entries(ENTRIES).map(async ([name, { entry, format }]) => {
    const result = await esbuild.build({
      entryPoints: [source(entry)],
      bundle: true,
      write: false,
      platform: 'browser',
      format,
      target: 'es2022',
      // No environment in a browser: every setting reads as unset, the backend as js until chosen.
      define: { 'process.env.RELORA_BACKEND': '"js"', 'process.env': '{}' },
      logLevel: 'silent',
      metafile: true,
      plugins: [{
        name: 'node-free',
        setup(build) {
          build.onResolve({ filter: /^node:worker_threads$/ }, () => ({ path: threads }));
          build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'node-stand-in' }));
          // The names the engine imports from node: modules, each a function returning undefined, so a
          // module-level call (native.ts's path.join) is harmless.
          build.onLoad({ filter: /.*/, namespace: 'node-stand-in' }, () => ({
            contents: `module.exports = Object.fromEntries(${JSON.stringify(NODE_NAMES)}.map((n) => [n, () => undefined]));`,
            loader: 'js',
          }));
        },
      }],
    });
    return { name: name as DemoBundle['name'], code: result.outputFiles[0].text, inputs: Object.keys(result.metafile.inputs) };
  }));
}

// Cross-origin isolation (SharedArrayBuffer) for the page and, since workers are checked too,
// for every script it loads.
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

/** Serves the page on host:port (0 = any free port); resolves once listening. */
export async function startDemoServer(port: number, host = '127.0.0.1'): Promise<{ server: Server; url: string }> {
  const scripts = new Map((await bundleDemo()).map((b) => [`/${b.name}`, b.code]));
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const script = scripts.get(path);
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...ISOLATION });
      res.end(HTML);
    } else if (script !== undefined) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', ...ISOLATION });
      res.end(script);
    } else if (path === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  return { server, url: `http://${host}:${actual}/` };
}
