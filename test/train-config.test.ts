import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { addConfigOptions } from '../src/cli/commands/train.ts';
import { CONFIG_KEYS, ConfigError, resolveConfig, suggestKey } from '../src/train/config.ts';
import { planPhases } from '../src/train/trainer.ts';
import { restartsAfter } from '../src/relora/restarts.ts';

function problems(raw: unknown): string[] {
  try {
    resolveConfig(raw);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('expected the config to be rejected');
}

test('the default config is a ReLoRA run with a warm start and at least 3 restarts', () => {
  const c = resolveConfig({});
  assert.equal(c.mode, 'relora');
  assert.equal(c.scheduler, 'cosine_restarts');
  assert.ok(c.warm_start_steps > 0);
  const phases = planPhases(c);
  assert.deepEqual(phases.map((p) => p.phase), ['full', 'relora']);
  assert.ok(restartsAfter(phases[1].steps, c.cycle_length).length >= 3);
  assert.equal(c.grad_accum, c.batch_size / c.micro_batch);
});

test('unknown keys are reported with the nearest known key', () => {
  assert.deepEqual(problems({ warmup_step: 10 }), ['unknown key "warmup_step" (did you mean "warmup_steps"?)']);
  assert.equal(suggestKey('seq-len'), 'seq_len');
  assert.equal(suggestKey('micro_bach'), 'micro_batch');
  assert.equal(suggestKey('zzzzzzzzzzzz'), null);
});

test('every problem is reported together: wrong types, ranges, and combinations', () => {
  const p = problems({ rank: 'abc', dropout: 1.5, lr: -1, bogus: 1, micro_batch: 3, batch_size: 8 });
  assert.ok(p.some((x) => x.startsWith('unknown key "bogus"')), p.join('\n'));
  assert.ok(p.some((x) => x.startsWith('rank:')), p.join('\n'));
  assert.ok(p.some((x) => x.startsWith('dropout:')), p.join('\n'));
  assert.ok(p.some((x) => x.startsWith('lr:')), p.join('\n'));
  const q = problems({ micro_batch: 3, batch_size: 8, steps: 1000, warm_start_steps: 100, cycle_length: 250, optimizer_reset: 'magnitude:1.2' });
  assert.ok(q.some((x) => /batch_size 8 must be a multiple of micro_batch 3/.test(x)), q.join('\n'));
  assert.ok(q.some((x) => /divisible by cycleLength/.test(x) && /900 updates/.test(x)), q.join('\n'));
  assert.ok(q.some((x) => /optimizer_reset: .*\[0, 1\)/.test(x)), q.join('\n'));
});

test('combinations that cannot work are rejected with the values named', () => {
  assert.ok(problems({ model: 'llama_7b' })[0].includes('known models: llama_9m'));
  assert.ok(problems({ steps: 100, warm_start_steps: 100 }).some((x) => /warm_start_steps 100 must be less than steps 100/.test(x)));
  assert.ok(problems({ mode: 'relora', scheduler: 'cosine' }).some((x) => /mode relora needs cosine_restarts/.test(x)));
  assert.ok(problems({ steps: 10, tokens: 1000 }).some((x) => /steps or tokens, not both/.test(x)));
  assert.ok(problems({ mode: 'full', warm_start_steps: 10 }).some((x) => /only meaningful with mode lora or relora/.test(x)));
  assert.ok(problems({ steps: 180, warm_start_steps: 120, cycle_length: 60 }).some((x) => /no restart would happen/.test(x)));
});

test('a token budget is turned into whole updates; full mode has one phase', () => {
  const c = resolveConfig({ mode: 'full', tokens: 2048 * 100 + 5, seq_len: 128, micro_batch: 4, batch_size: 16 });
  assert.equal(c.steps, 100);
  assert.equal(c.grad_accum, 4);
  assert.deepEqual(planPhases(c).map((p) => [p.phase, p.steps]), [['full', 100]]);
});

test('a bad value inside a model shape or a list names its field, what was expected and what was given', () => {
  const p = problems({ model: { hidden_size: 0, intermediate_size: 64, num_heads: 4 } });
  assert.ok(p.includes('model.hidden_size: Too small: expected number to be >0 (got 0)'), p.join('\n'));
  assert.ok(p.includes('model.num_layers: missing; expected number'), p.join('\n'));
  assert.ok(!p.some((x) => /model\b.*expected string/.test(x)), `the model-name alternative is not what was meant: ${p.join('\n')}`);
  assert.deepEqual(problems({ model: 5 }), ['model: expected string or object, got 5']);
  assert.deepEqual(problems({ rank_sample: ['q_proj', 3] }), ['rank_sample.1: expected string, got 3']);
  assert.ok(problems({ seq_len: 1 }).some((x) => x === 'seq_len: Too small: expected number to be >=2 (got 1)'));
  assert.ok(!problems({ model: { hidden_size: 0 } }).some((x) => x.includes('Invalid input')));
});

test('train --help shows every config key as a flag, with what it does', () => {
  const help = addConfigOptions(new Command('train')).helpInformation();
  for (const key of CONFIG_KEYS) {
    const line = help.split('\n').find((l) => l.trimStart().startsWith(`--${key.replace(/_/g, '-')} `));
    assert.ok(line, `--${key.replace(/_/g, '-')} is in the help`);
    assert.ok(!line.includes('config key'), `--${key.replace(/_/g, '-')} has a description: ${line}`);
  }
  assert.doesNotMatch(help, /Other config keys:/, 'every key is in one of the help\'s sections (HELP_GROUPS in src/cli/commands/train.ts)');
  assert.match(help, /--tokenizer <value> +a tokenizer\.json/);
  assert.match(help, /--warmup-steps <value> +linear warm-up updates/);
  assert.match(help, /--rank <value> +LoRA rank r \(default 32\)/);
});
