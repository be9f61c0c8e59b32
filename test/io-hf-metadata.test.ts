/** The Hugging Face metadata a run keeps from its source folder, and what its export writes from it. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyHfMetadata, hfSourceDir, readHfMetadata } from '../src/io/hf-metadata.ts';
import { tempDir } from './interop-helpers.ts';
import { writeLlama3LikeMetadata } from './hf-metadata-helpers.ts';

test('copyHfMetadata keeps every metadata file of the source byte for byte, and nothing else', async () => {
  const { dir, cleanup } = tempDir('hf-meta');
  try {
    const src = join(dir, 'src');
    mkdirSync(src);
    writeLlama3LikeMetadata(src);
    writeFileSync(join(src, 'model.safetensors'), 'not copied');
    const run = join(dir, 'run');
    mkdirSync(run);
    await copyHfMetadata(src, run);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      assert.deepEqual(readFileSync(join(hfSourceDir(run), f)), readFileSync(join(src, f)), f);
    }
    assert.ok(!existsSync(join(hfSourceDir(run), 'model.safetensors')));
    // The tokenizer loader reads the EOS name beside the run's tokenizer.json.
    assert.deepEqual(readFileSync(join(run, 'tokenizer_config.json')), readFileSync(join(src, 'tokenizer_config.json')));
    const meta = await readHfMetadata(hfSourceDir(run));
    assert.equal(meta?.config.bos_token_id, 128000);
    assert.equal(meta?.config.max_position_embeddings, 8192);
    assert.equal(meta?.tokenizerConfig?.bos_token, '<|begin_of_text|>');
  } finally {
    cleanup();
  }
});

test('copyHfMetadata refuses a folder without a valid config.json, naming the file', async () => {
  const { dir, cleanup } = tempDir('hf-meta-bad');
  try {
    await assert.rejects(copyHfMetadata(dir, join(dir, 'run')), /config\.json is missing/);
    writeFileSync(join(dir, 'config.json'), '{"model_type": "llama"');
    await assert.rejects(copyHfMetadata(dir, join(dir, 'run')), /config\.json: not valid JSON/);
    writeLlama3LikeMetadata(dir);
    writeFileSync(join(dir, 'generation_config.json'), '[1]');
    await assert.rejects(copyHfMetadata(dir, join(dir, 'run')), /generation_config\.json: expected a JSON object/);
  } finally {
    cleanup();
  }
});
