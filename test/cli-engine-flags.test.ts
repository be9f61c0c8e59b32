/**
 * `--backend` / `--threads` reach `relora train` wherever they stand on the command line (they
 * are also the program's global options, which commander parses first), and RELORA_BACKEND counts
 * when neither a flag nor the config file names a backend. Before, train ran on the config's
 * default (auto: native, all cores) whatever was asked.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const ENTRY = join(import.meta.dirname, '..', 'src', 'cli', 'entry.ts');
const work = mkdtempSync(join(tmpdir(), 'relora-engine-flags-'));
const TINY = ['--model', '{"hidden_size":32,"intermediate_size":88,"num_heads":2,"num_layers":1}', '--mode', 'full', '--steps', '1',
  '--seq-len', '16', '--micro-batch', '1', '--eval-tokens', '64', '--no-report'];

function trainLog(args: string[], env: NodeJS.ProcessEnv = {}): string {
  const base: NodeJS.ProcessEnv = { ...process.env, RELORA_CACHE_DIR: join(work, 'cache') };
  delete base.RELORA_BACKEND;
  delete base.RELORA_THREADS;
  const r = spawnSync(process.execPath, ['--import', 'tsx', ENTRY, ...args], { encoding: 'utf8', env: { ...base, ...env } });
  assert.equal(r.status, 0, r.stderr.slice(-1500));
  return r.stderr;
}

const firstLine = (args: string[], env: NodeJS.ProcessEnv = {}): string => trainLog(args, env).split('\n').find((l) => l.startsWith('backend ')) ?? '';

describe('engine flags of relora train', () => {
  after(() => rmSync(work, { recursive: true, force: true }));
  it('--backend js --threads 1 after the command name', () => {
    assert.match(firstLine(['train', ...TINY, '--backend', 'js', '--threads', '1', '--out', join(work, 'a')]), /^backend js\b/);
  });
  it('--backend before the command name, and --threads on the native backend', () => {
    assert.match(firstLine(['--backend', 'native', 'train', ...TINY, '--threads', '1', '--out', join(work, 'b')]), /^backend native .*\b1 threads\)/);
  });
  it('RELORA_BACKEND when no flag names a backend', () => {
    assert.match(firstLine(['train', ...TINY, '--out', join(work, 'c')], { RELORA_BACKEND: 'js' }), /^backend js\b/);
  });
  it('--shard-optimizer in one process says it has nothing to shard', () => {
    assert.match(trainLog(['train', ...TINY, '--threads', '1', '--shard-optimizer', '--out', join(work, 'd')]), /shard_optimizer: one process, nothing to shard/);
  });
});
