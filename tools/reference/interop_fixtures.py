"""Writes test/fixtures/interop/: two random LLaMA folders saved by transformers, with the
logits and greedy ids that transformers computes for them.

    tools/reference/.venv/bin/python tools/reference/interop_fixtures.py

- gqa/    grouped-query attention, float32, one model.safetensors
- tied/   tied embeddings, bfloat16, sharded (model.safetensors.index.json + 2+ shards)
Each folder has expected.safetensors beside the model files: input_ids I32 [2, 12], logits
[2, 12, V] (float32; for tied/, of the model loaded back from its bfloat16 files and upcast, so
both sides compute in float32 from the same rounded weights), prompt I32 [1, 5] and greedy I32
[20] (model.generate, greedy, KV cache, no EOS).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interop_models import greedy, greedy_margin, prompt_ids, random_llama  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "interop"
GREEDY_TOKENS = 20


def make(kind: str, seed: int, dtype: torch.dtype, shard: str | None) -> None:
    folder = OUT / kind
    shutil.rmtree(folder, ignore_errors=True)
    model = random_llama(kind, seed).to(dtype)
    model.save_pretrained(folder, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
    # What a user of the folder gets: the saved weights, computed in float32.
    loaded = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    vocab = loaded.config.vocab_size
    ids = prompt_ids(vocab, seed + 1, 2, 12)
    prompt = prompt_ids(vocab, seed + 2, 1, 5)
    with torch.no_grad():
        logits = loaded(ids).logits.float()
    gen = greedy(loaded, prompt, GREEDY_TOKENS)
    margin = greedy_margin(loaded, prompt, gen)
    assert margin > 1e-3, f"{kind}: greedy margin {margin} is too small for a robust test; change the seed"
    save_file({
        "input_ids": ids.to(torch.int32).contiguous(),
        "logits": logits.contiguous(),
        "prompt": prompt.to(torch.int32).contiguous(),
        "greedy": torch.tensor(gen, dtype=torch.int32),
    }, folder / "expected.safetensors")
    files = sorted(p.name for p in folder.iterdir())
    print(f"{kind}: {files}, greedy margin {margin:.4f}, max |logit| {logits.abs().max():.3f}")
    if shard:
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) >= 2, "expected a sharded save"
    if loaded.config.tie_word_embeddings:
        from safetensors import safe_open
        names = set()
        for f in folder.glob("model*.safetensors"):
            with safe_open(f, "pt") as st:
                names |= set(st.keys())
        assert "lm_head.weight" not in names, "a tied save should not write lm_head.weight"


def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    make("gqa", 11, torch.float32, None)
    make("tied", 23, torch.bfloat16, "20KB")


if __name__ == "__main__":
    main()
