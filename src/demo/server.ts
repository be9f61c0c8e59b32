/**
 * `relora demo`'s server: bundles the page (./browser/page.ts) with esbuild for the browser and
 * serves it with its HTML on localhost. The engine's Node-only corners (the native addon's
 * loader, the worker bridge) are in the import graph but never run in the page (it selects the
 * js backend), so every `node:` module is replaced by an inert stand-in: no Node module reaches
 * the bundle.
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
<p id="backend"></p>
<p id="stats">starting…</p>
<canvas id="curve" width="720" height="240"></canvas>
<p>Grey lines: merges. <input id="prompt" value="the cat "> <button id="sample">Sample</button></p>
<div id="output"></div>
<script src="bundle.js"></script>
</body></html>`;

const NODE_NAMES = ['join', 'dirname', 'resolve', 'fileURLToPath', 'pathToFileURL', 'existsSync', 'readFileSync', 'createRequire', 'Worker', 'parentPort', 'workerData'];

export interface DemoBundle {
  code: string;
  /** Every module that went in (esbuild's metafile): source files and `node-stand-in:` stand-ins. */
  inputs: string[];
}

/** The page's script: one self-contained browser bundle. */
export async function bundleDemo(): Promise<DemoBundle> {
  const esbuild = await import('esbuild');
  // From the sources (tsx) the page is page.ts; in the compiled package, page.js.
  const entry = fileURLToPath(new URL(`./browser/page${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    define: { 'process.env.RELORA_BACKEND': '"js"', 'process.env.RELORA_THREADS': 'undefined' },
    logLevel: 'silent',
    metafile: true,
    plugins: [{
      name: 'node-free',
      setup(build) {
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
  return { code: result.outputFiles[0].text, inputs: Object.keys(result.metafile.inputs) };
}

/** Serves the page on host:port (0 = any free port); resolves once listening. */
export async function startDemoServer(port: number, host = '127.0.0.1'): Promise<{ server: Server; url: string }> {
  const { code: bundle } = await bundleDemo();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(HTML);
    } else if (path === '/bundle.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(bundle);
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
