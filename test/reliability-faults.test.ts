/**
 * Faults other than a crash: corrupted or truncated checkpoints (detected, named, fallen back
 * from), a state.json with invalid contents, edited files that define the run (config, tokenizer,
 * model shape, rank base), a full disk during a checkpoint write, a config too big for the machine, and a learning
 * rate that makes training diverge.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCheckpoint, loadLatestCheckpoint } from '../src/train/checkpoint.ts';
import { resolveConfig } from '../src/train/config.ts';
import { estimateTrainingMemory, ResourceError } from '../src/train/memory.ts';
import { modelConfigFor, train } from '../src/train/trainer.ts';
import {
  latestCheckpointDir, runCli, runDifferences, startCli, tamperState, tempDir, tinyRunArgs, writeCorpus,
} from './fixtures/reliability/harness.ts';

const work = tempDir('faults');
const env = { RELORA_CACHE_DIR: join(work, 'cache') };
let data = '';
/** A finished run that keeps its last three checkpoints (20, 25, 30). */
let finished = '';

const ck = (runDir: string, step: number): string => join(runDir, 'checkpoints', `step-${String(step).padStart(6, '0')}`);

function copyRun(name: string): string {
  const dir = join(work, name);
  cpSync(finished, dir, { recursive: true });
  return dir;
}

before(async () => {
  data = writeCorpus(work);
  finished = join(work, 'finished');
  const r = await runCli(tinyRunArgs(data, finished, ['--keep-checkpoints', '3']), env);
  assert.equal(r.code, 0, r.stderr);
});

describe('corrupted and truncated checkpoints', () => {
  test('each kind of damage is detected, with a message naming the file', () => {
    const dir = copyRun('damage');
    const cases: [string, (d: string) => void, RegExp][] = [
      ['truncated weights', (d) => truncateSync(join(d, 'model.safetensors'), 100), /model\.safetensors has 100 bytes, its manifest says \d+ \(truncated or corrupted\)/],
      ['flipped byte', (d) => {
        const p = join(d, 'optimizer.safetensors');
        const b = readFileSync(p);
        b[b.length - 3] ^= 0x40;
        writeFileSync(p, b);
      }, /optimizer\.safetensors does not match its checksum \(corrupted\)/],
      ['edited state', (d) => writeFileSync(join(d, 'state.json'), readFileSync(join(d, 'state.json'), 'utf8').replace('"step": 30', '"step": 31')), /state\.json (has \d+ bytes|does not match its checksum)/],
      ['missing file', (d) => rmSync(join(d, 'optimizer.safetensors')), /optimizer\.safetensors is missing/],
      ['missing manifest', (d) => rmSync(join(d, 'manifest.json')), /manifest\.json is missing \(incomplete checkpoint\)/],
      ['torn manifest', (d) => truncateSync(join(d, 'manifest.json'), 20), /manifest\.json is not valid JSON/],
      ['manifest without entries', (d) => writeFileSync(join(d, 'manifest.json'), '{"version":1,"step":30,"files":[]}'), /manifest\.json does not list model\.safetensors/],
    ];
    for (const [what, damage, message] of cases) {
      const d = join(work, `damage-${what.replace(/ /g, '-')}`);
      cpSync(ck(dir, 30), d, { recursive: true });
      loadCheckpoint(d); // intact before the damage
      damage(d);
      assert.throws(() => loadCheckpoint(d), (e: Error) => {
        assert.ok(e.constructor === Error, `${what}: a plain Error, got ${e.constructor.name}`);
        assert.match(e.message, message, what);
        assert.ok(e.message.includes(d), `${what}: names the checkpoint folder`);
        return true;
      });
    }
  });

  test('--resume falls back to the newest valid checkpoint, says so, and still reproduces the run', async () => {
    const dir = copyRun('fallback');
    truncateSync(join(ck(dir, 30), 'model.safetensors'), 1000);
    const b = readFileSync(join(ck(dir, 25), 'optimizer.safetensors'));
    b[b.length - 1] ^= 1;
    writeFileSync(join(ck(dir, 25), 'optimizer.safetensors'), b);

    const r = await runCli(['train', '--resume', dir], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: checkpoint file .*step-000030\/model\.safetensors has 1000 bytes.*falling back to an older checkpoint/);
    assert.match(r.stderr, /warning: checkpoint file .*step-000025\/optimizer\.safetensors does not match its checksum/);
    assert.match(r.stderr, /falling back to .*step-000020: step-000030, step-000025 failed verification/);
    assert.match(r.stderr, /resuming .* from .*step-000020 \(update 20 of 30\)/);
    assert.deepEqual(runDifferences(finished, dir), []);
  });

  test('with no valid checkpoint left, --resume stops with an error naming them all', async () => {
    const dir = copyRun('all-bad');
    for (const s of [20, 25, 30]) rmSync(join(ck(dir, s), 'manifest.json'));
    const r = await runCli(['train', '--resume', dir], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /relora: error: .*no valid checkpoint \(all of step-000030, step-000025, step-000020 failed verification\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
});

describe('what a checkpoint does not cover', () => {
  test('a newer checkpoint whose state.json is invalid (manifest re-hashed): --resume names file and field, falls back, deletes no valid checkpoint, and reproduces the run', async () => {
    for (const [what, edit, field] of [
      ['missing step', (s: Record<string, unknown>) => delete s.step, '"step"'],
      ['step -1', (s: Record<string, unknown>) => { s.step = -1; }, '"step"'],
      ['rng null', (s: Record<string, unknown>) => { s.rng = null; }, '"rng"'],
      ['optimizer_steps null', (s: Record<string, unknown>) => { s.optimizer_steps = null; }, '"optimizer_steps"'],
    ] as const) {
      const dir = copyRun(`bad-state-${what.replace(/ /g, '-')}`);
      tamperState(ck(dir, 30), edit);
      const r = await runCli(['train', '--resume', dir], env);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`warning: checkpoint file ${ck(dir, 30)}/state.json is not a valid training state: ${field}`), `${what}: ${r.stderr}`);
      assert.match(r.stderr, /resuming .* from .*step-000025 \(update 25 of 30\)/, what);
      assert.ok(existsSync(ck(dir, 25)) && existsSync(ck(dir, 30)), `${what}: the valid checkpoint was kept, the redone one written`);
      assert.equal(readdirSync(join(dir, 'checkpoints')).filter((n) => n.startsWith('step-000030.rejected-')).length, 1, `${what}: the invalid one is set aside, not deleted`);
      assert.deepEqual(runDifferences(finished, dir), [], what);
    }
  });

  test('an edited or deleted file that defines the run stops --resume (and eval) with the file named', async () => {
    const edits: [string, (d: string) => void, RegExp][] = [
      ['tokenizer.json', (d) => {
        appendFileSync(join(d, 'tokenizer.json'), '\n');
      }, /run file .*tokenizer\.json has changed since the run wrote it/],
      ['model.json ropeTheta', (d) => {
        const p = join(d, 'model.json');
        writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), ropeTheta: 500000 }));
      }, /run file .*model\.json has changed since the run wrote it/],
      ['config.json lr', (d) => {
        const p = join(d, 'config.json');
        writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), lr: 0.0123 }, null, 2));
      }, /run file .*config\.json has changed since the run wrote it/],
      ['config.json seed', (d) => {
        const p = join(d, 'config.json');
        writeFileSync(p, readFileSync(p, 'utf8').replace('"seed": 0', '"seed": 1'));
      }, /run file .*config\.json has changed since the run wrote it/],
      ['deleted rank base', (d) => rmSync(join(d, 'rank_base.safetensors')), /rank_base\.safetensors is missing/],
    ];
    for (const [what, edit, message] of edits) {
      const dir = copyRun(`edited-${what.replace(/[ .]/g, '-')}`);
      const lr = readFileSync(join(dir, 'config.json'), 'utf8');
      edit(dir);
      if (what.startsWith('config.json')) assert.notEqual(readFileSync(join(dir, 'config.json'), 'utf8'), lr, `${what}: the edit happened`);
      const r = await runCli(['train', '--resume', dir], env);
      assert.notEqual(r.code, 0, `${what}: --resume went on as a different run:\n${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
      const e = await runCli(['eval', dir], env);
      assert.notEqual(e.code, 0, `${what}: eval`);
      assert.match(e.stderr, message, `${what}: eval`);
    }
  });
});

/** Mount a small tmpfs at `dir`; false where this process may not mount. */
function mountTmpfs(dir: string, bytes: number): boolean {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('a full disk during a checkpoint write', () => {
  let mounted: string | null = null;
  after(() => {
    if (mounted) execFileSync('umount', [mounted]);
  });

  test('leaves the previous checkpoint valid, stops with a clear error, and the run resumes once there is room', async (t) => {
    const disk = join(work, 'disk');
    const real = mountTmpfs(disk, 4 * 2 ** 20);
    if (real) mounted = disk;
    t.diagnostic(real ? 'a real 4 MiB tmpfs that fills up' : 'mounting is not permitted here: ENOSPC injected by RELORA_TEST_FAIL');
    const runDir = join(disk, 'run');
    const release = join(work, 'release-disk');
    const filler = join(disk, 'filler');
    // Real disk: pause inside update 12 (checkpoint 10 committed), fill the disk to all but
    // 64 KiB (room for metrics lines, not for a checkpoint), let the run go on to checkpoint 15.
    const hookEnv: Record<string, string> = real
      ? { ...env, RELORA_TEST_PAUSE: 'update:12', RELORA_TEST_RELEASE: release }
      : { ...env, RELORA_TEST_FAIL: 'checkpoint:15:ENOSPC' };
    const r = await startCli(tinyRunArgs(data, runDir), {
      env: hookEnv,
      onLine: (line) => {
        if (!line.startsWith('relora-test: paused at')) return;
        const fs = statfsSync(disk);
        writeFileSync(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 64 * 1024)));
        writeFileSync(release, '');
      },
    }).done;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /relora: error: checkpoint step-000015 not written: the disk is full \(ENOSPC\); the previous checkpoint .*step-000010 is still valid\. Free some space and continue with --resume/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(readFileSync(join(runDir, 'latest'), 'utf8').trim(), 'step-000010');
    assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).filter((n) => n.startsWith('.')), [], 'the partial write is removed');
    const warnings: string[] = [];
    assert.equal(loadLatestCheckpoint(runDir, (m) => warnings.push(m)).state.step, 10);
    assert.deepEqual(warnings, []);

    rmSync(filler, { force: true });
    const resumed = await runCli(['train', '--resume', runDir], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    const reference = join(work, 'disk-reference');
    const ref = await runCli(tinyRunArgs(data, reference), env);
    assert.equal(ref.code, 0, ref.stderr);
    assert.deepEqual(runDifferences(reference, runDir), []);
  });
});

describe('memory', () => {
  test('a config far beyond this machine is refused before any work, with the estimate and --force', async () => {
    const runDir = join(work, 'huge');
    const r = await runCli(['train', '--data', data, '--out', runDir, '--model', 'llama_1b', '--seq-len', '2048', '--micro-batch', '64', '--vocab-size', '32000'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /relora: error: this training configuration needs an estimated [\d.]+ [GT]iB \(parameters [\d.]+ GiB, gradients .*, optimizer .*, activations .*, buffer pool .*, runtime .*\), more than this machine's [\d.]+ GiB of memory; .*pass --force to start anyway/);
    assert.ok(!existsSync(runDir), 'nothing was written');
  });

  test('the estimate grows with what it counts, and --force overrides the refusal', async () => {
    const raw = { data: [data], model: { hidden_size: 32, intermediate_size: 64, num_heads: 4, num_layers: 2 }, mode: 'full', steps: 2, seq_len: 16, micro_batch: 2, eval_tokens: 32, tokenizer_vocab_size: 300, warmup_steps: 0, rank_sample: 'none' };
    const cfg = resolveConfig(raw);
    const est = (c: typeof cfg) => estimateTrainingMemory({
      model: modelConfigFor(c, 300), mode: 'full', lora: { rank: c.rank, alpha: c.alpha, dropout: c.dropout, targetModules: c.target_modules }, microBatch: c.micro_batch, seqLen: c.seq_len,
    });
    const base = est(cfg);
    assert.ok(est(resolveConfig({ ...raw, micro_batch: 4 })).activations > base.activations);
    assert.ok(est(resolveConfig({ ...raw, seq_len: 32, eval_tokens: 32 })).activations > base.activations);
    assert.ok(est(resolveConfig({ ...raw, model: { ...raw.model, num_layers: 4 } })).params > base.params);
    assert.equal(base.total, base.params + base.grads + base.optimizer + base.activations + base.pool + base.runtime);
    // LoRA: each projection keeps x·Aᵀ [tokens, r], except in the merged order (no dropout, enough tokens).
    const loraEst = (dropout: number, microBatch: number) => estimateTrainingMemory({
      model: modelConfigFor(cfg, 300), mode: 'relora', lora: { rank: 4, alpha: 8, dropout, targetModules: cfg.target_modules }, microBatch, seqLen: 16,
    }).activations - estimateTrainingMemory({
      model: modelConfigFor(cfg, 300), mode: 'full', lora: { rank: 4, alpha: 8, dropout, targetModules: cfg.target_modules }, microBatch, seqLen: 16,
    }).activations;
    assert.equal(loraEst(0.1, 8), 4 * 2 * 7 * 8 * 16 * 4);
    assert.equal(loraEst(0, 8), 0);
    assert.equal(loraEst(0, 1), loraEst(0.1, 1), 'too few tokens to merge');

    const prev = process.env.RELORA_CACHE_DIR;
    process.env.RELORA_CACHE_DIR = env.RELORA_CACHE_DIR;
    try {
      const limit = Math.floor(base.total / 2);
      const log: string[] = [];
      await assert.rejects(train({ config: cfg, runDir: join(work, 'limited'), memoryLimitBytes: limit, log: (s) => log.push(s) }), ResourceError);
      assert.ok(!existsSync(join(work, 'limited')));
      const summary = await train({ config: cfg, runDir: join(work, 'forced'), memoryLimitBytes: limit, force: true, log: (s) => log.push(s) });
      assert.equal(summary.steps, 2);
      assert.ok(log.some((l) => /estimated memory: .*starting anyway \(--force\)/.test(l)));
    } finally {
      if (prev === undefined) delete process.env.RELORA_CACHE_DIR;
      else process.env.RELORA_CACHE_DIR = prev;
    }
  });
});

describe('non-finite numbers', () => {
  /** Every checkpoint the run left verifies and holds only finite numbers. */
  function assertCheckpointsFinite(runDir: string): number {
    const names = readdirSync(join(runDir, 'checkpoints')).filter((n) => n.startsWith('step-'));
    for (const n of names) {
      const c = loadCheckpoint(join(runDir, 'checkpoints', n));
      for (const [name, a] of [...Object.entries(c.model), ...Object.entries(c.optimizer)]) {
        assert.ok(a.every(Number.isFinite), `${n}: ${name} holds a non-finite value`);
      }
    }
    return names.length;
  }

  test('skipped updates are counted and logged; past max_skipped_updates the run stops pointing at the learning rate', async () => {
    const runDir = join(work, 'diverge');
    const r = await runCli(tinyRunArgs(data, runDir, ['--warm-start-lr', '1e30', '--max-skipped-updates', '3', '--save-every', '1', '--keep-checkpoints', '100']), env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /warning: update \d+ skipped: loss NaN, gradient norm NaN \(1 skipped so far, at most 3\)/);
    assert.match(r.stderr, /relora: error: 4 updates had a non-finite loss or gradient \(more than max_skipped_updates 3\); the learning rate \(1e\+30\) is probably too high: lower --warm-start-lr/);
    const train = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((x) => x.type === 'train');
    const skippedCounts = train.map((x) => x.skipped as number);
    assert.equal(skippedCounts.at(-1), 4, 'the last record counts every skip');
    assert.ok(skippedCounts.every((c, i) => i === 0 || c - skippedCounts[i - 1]! === (train[i]!.loss === null ? 1 : 0)), 'the count goes up exactly at the non-finite losses');
    assert.ok(assertCheckpointsFinite(runDir) > 0);
  });

  test('weights that overflow are never written to a checkpoint', async () => {
    const runDir = join(work, 'overflow');
    const r = await runCli(tinyRunArgs(data, runDir, ['--warm-start-lr', '1e39', '--save-every', '1', '--keep-checkpoints', '100']), env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /relora: error: after update \d+ the model weight \S+ holds non-finite values, so no checkpoint was written \(the last one, .*step-\d+, is valid\); the learning rate \(1e\+39\) is probably too high: lower --warm-start-lr/);
    assert.ok(assertCheckpointsFinite(runDir) > 0);
    const latest = loadCheckpoint(latestCheckpointDir(runDir));
    assert.ok(Object.values(latest.model).every((a) => a.every(Number.isFinite)));
  });
});
