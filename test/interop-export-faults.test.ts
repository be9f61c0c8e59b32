/** A failed or killed export: the error names the file and a full disk, and the next export cleans up what a killed one left. */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { writeFailure } from '../src/io/atomic.ts';
import { exportHFModel, removeStaleExports } from '../src/io/hf-export.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { tempDir } from './interop-helpers.ts';

setBackend('js');

const { dir: work, cleanup } = tempDir('export-faults');
let mounted: string | null = null;
after(() => {
  if (mounted) execFileSync('umount', [mounted]);
  cleanup();
});

function smallModel(vocabSize = 512): LlamaForCausalLM {
  return new LlamaForCausalLM({ vocabSize, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numLayers: 2, maxSeqLen: 32, rmsNormEps: 1e-6, ropeTheta: 10000 }).initWeights(1);
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

test('a write error names the file and, for a full disk, says so', () => {
  const sys = (code: string) => Object.assign(new Error(`${code}: failure, write`), { code, syscall: 'write' });
  const full = writeFailure('/data/out/model.safetensors', sys('ENOSPC'));
  assert.equal(full.message, 'cannot write /data/out/model.safetensors: the disk is full (ENOSPC); free some space on the device holding /data/out, or write elsewhere');
  assert.equal((full as NodeJS.ErrnoException).code, 'ENOSPC', 'the code is kept for callers that branch on it');
  assert.match(writeFailure('/data/x', sys('EDQUOT')).message, /^cannot write \/data\/x: the disk is full \(EDQUOT\)/);
  assert.match(writeFailure('/data/x', sys('EIO')).message, /^cannot write \/data\/x: EIO/);
  const own = new Error('tensor "w" holds a non-finite value');
  assert.equal(writeFailure('/data/x', own), own, 'a producer\'s own error is passed on as it is');
});

test('an export onto a full disk names the file, says the disk is full, and leaves nothing behind', (t) => {
  const disk = join(work, 'disk');
  mkdirSync(disk, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', disk], { stdio: 'ignore' });
    mounted = disk;
  } catch {
    t.skip('mounting a tmpfs is not permitted here (the message itself is checked by the test above)');
    return;
  }
  const model = smallModel(4096); // ≈ 1.2 MiB of float32 weights: more than the disk holds
  const out = join(disk, 'hf');
  return assert.rejects(exportHFModel(model, out), (e: Error) => {
    assert.match(e.message, new RegExp(`^export to ${out} failed: cannot write .*model\\.safetensors: the disk is full \\(ENOSPC\\); free some space on the device holding`));
    assert.match(e.message, /The export needs about 1\.\d MiB of weights; nothing was left behind/);
    assert.deepEqual(readdirSync(disk), [], 'the partial export is removed');
    return true;
  });
});

test('the next export into the same folder removes the temporary folders of killed exports and puts back a moved-aside one', async () => {
  const parent = join(work, 'exports');
  mkdirSync(parent, { recursive: true });
  const dead = deadPid();
  // A killed export of OUT, mid-write: a temporary folder with some files.
  const stale = join(parent, `.hf.tmp-${dead}`);
  mkdirSync(stale);
  writeFileSync(join(stale, 'model.safetensors'), 'partial');
  writeFileSync(join(stale, `config.json.tmp-${dead}-3`), '{');
  // A killed --force export of OTHER, between its two renames: the previous export was moved aside.
  const aside = join(parent, `.other.old-${dead}`);
  mkdirSync(aside);
  writeFileSync(join(aside, 'config.json'), '{"kept": true}');
  // Not ours to touch: a live process's temporary folder, and a folder holding files an export never writes.
  const live = join(parent, `.hf.tmp-${process.ppid}`);
  mkdirSync(live);
  const foreign = join(parent, `.notes.tmp-${dead}`);
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'diary.txt'), 'mine');

  const model = smallModel();
  const notes: string[] = [];
  await exportHFModel(model, join(parent, 'hf'), { log: (m) => notes.push(m) });
  assert.deepEqual(notes.sort(), [
    `removed ${stale} (left by export process ${dead}, which is no longer running)`,
    `restored ${join(parent, 'other')} (an export killed while replacing it had moved it to ${aside})`,
  ]);
  assert.ok(!existsSync(stale), 'the killed export\'s temporary folder is removed');
  assert.equal(readFileSync(join(parent, 'other', 'config.json'), 'utf8'), '{"kept": true}', 'the moved-aside export is back');
  assert.ok(existsSync(live) && existsSync(foreign));
  assert.deepEqual(removeStaleExports(parent), [], 'nothing left to clean');
  model.dispose();
});
