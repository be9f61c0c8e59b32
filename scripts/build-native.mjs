#!/usr/bin/env node
/* global process, console */
/**
 * Builds the native compute backend (native/ → native/build/Release/relora_native.node).
 *
 * Runs as the package's `install` script, so it must never fail an install: on any problem it
 * prints why and that the (slower) js backend will be used, then exits 0.
 *
 * - Headers come from the running Node installation (--nodedir), never from the network.
 * - oneDNN is used for GEMM when a test program including <oneapi/dnnl/dnnl.h> links with
 *   -ldnnl; otherwise the addon's built-in GEMM is compiled. RELORA_BLAS=builtin forces the latter.
 * - RELORA_SKIP_NATIVE=1 skips the build entirely.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const nativeDir = join(root, 'native');
const output = join(nativeDir, 'build', 'Release', 'relora_native.node');

function giveUp(reason) {
  console.warn(`relora: native backend not built (${reason}).`);
  console.warn('relora: the pure JavaScript backend will be used instead; it is much slower.');
  process.exit(0);
}

/** True when `source` compiles and links with `flags` (probes headers and libraries together). */
function compiles(source, flags) {
  const dir = mkdtempSync(join(tmpdir(), 'relora-probe-'));
  try {
    const file = join(dir, 'probe.c');
    writeFileSync(file, source);
    const cc = process.env.CC || 'cc';
    const r = spawnSync(cc, [file, '-o', join(dir, 'probe'), ...flags], { stdio: 'ignore' });
    return r.status === 0;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ONEDNN_PROBE = `#include <oneapi/dnnl/dnnl.h>
int main(void) { float a = 1, b = 1, c = 0; return dnnl_sgemm('N', 'N', 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1) != dnnl_success; }
`;
// Only linked, never run: LAPACK is detected for later use, not called yet.
const LAPACK_PROBE = `extern void sgesv_(void);
int main(void) { sgesv_(); return 0; }
`;

function main() {
  if (process.env.RELORA_SKIP_NATIVE === '1') giveUp('RELORA_SKIP_NATIVE=1');
  if (!existsSync(join(nativeDir, 'binding.gyp'))) giveUp(`no ${join(nativeDir, 'binding.gyp')}`);

  const nodedir = dirname(dirname(process.execPath));
  if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
    giveUp(`Node headers not found under ${nodedir}/include/node (they are not downloaded)`);
  }

  // Our own node-gyp dependency first; otherwise the copy npm bundles (npm exports its path to
  // install scripts as npm_config_node_gyp).
  let nodeGyp = process.env.npm_config_node_gyp;
  try {
    nodeGyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    if (!nodeGyp || !existsSync(nodeGyp)) giveUp('node-gyp is not installed');
  }

  const forced = process.env.RELORA_BLAS;
  const useOnednn = forced === 'builtin' ? false : compiles(ONEDNN_PROBE, ['-ldnnl']);
  if (forced === 'onednn' && !useOnednn) giveUp('RELORA_BLAS=onednn but oneDNN headers or library were not found');
  const haveLapack = compiles(LAPACK_PROBE, ['-llapack']);
  console.log(`relora: building native backend (GEMM: ${useOnednn ? 'oneDNN' : 'built-in'}, LAPACK ${haveLapack ? 'found' : 'not found'})`);

  const r = spawnSync(
    process.execPath,
    [nodeGyp, 'rebuild', `--nodedir=${nodedir}`, '--', `-Duse_onednn=${useOnednn}`, `-Dhave_lapack=${haveLapack}`],
    { cwd: nativeDir, stdio: 'inherit' },
  );
  if (r.error) giveUp(`could not run node-gyp: ${r.error.message}`);
  if (r.status !== 0) giveUp(`node-gyp exited with status ${r.status}; see the compiler output above`);
  if (!existsSync(output)) giveUp(`build finished but ${output} is missing`);
  console.log(`relora: native backend built: ${output}`);
}

try {
  main();
} catch (err) {
  giveUp(err instanceof Error ? err.message : String(err));
}
