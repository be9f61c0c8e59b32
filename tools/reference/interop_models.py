"""Random-weight LLaMA models made by transformers, for the interop fixtures and checks.

Two shapes cover what importing a Hugging Face model needs beyond the model relora trains from scratch:
- "gqa": grouped-query attention (4 query heads share 2 key/value heads), separate lm_head,
  non-default rope_theta and rms_norm_eps;
- "tied": tied embeddings (lm_head is the embedding; save_pretrained writes no lm_head.weight),
  3 query heads sharing 1 key/value head.

Weights are drawn large enough (std 0.15, norms 1 + 0.1·N) that the top two logits along a greedy
generation stay well apart, so float32 rounding differences between two correct implementations
cannot flip a greedy choice; `greedy_margin` measures that.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "gqa": dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=2, num_hidden_layers=2, max_position_embeddings=64,
                rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False),
    "tied": dict(vocab_size=80, hidden_size=24, intermediate_size=48, num_attention_heads=3,
                 num_key_value_heads=1, num_hidden_layers=2, max_position_embeddings=64,
                 rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True),
}


def random_llama(kind: str, seed: int) -> LlamaForCausalLM:
    cfg = LlamaConfig(**SHAPES[kind], attention_bias=False, mlp_bias=False, hidden_act="silu",
                      bos_token_id=None, eos_token_id=None, pad_token_id=None,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg).float().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            draw = torch.randn(p.shape, generator=gen)
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * draw)
            else:
                p.copy_(0.15 * draw)
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def prompt_ids(vocab: int, seed: int, batch: int, length: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=gen)


@torch.no_grad()
def greedy(model: LlamaForCausalLM, prompt: torch.Tensor, n: int) -> list[int]:
    """transformers' own greedy generation (KV cache), no EOS: exactly n new ids."""
    out = model.generate(prompt, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                         eos_token_id=None, pad_token_id=0, use_cache=True)
    new = out[0, prompt.shape[1]:].tolist()
    assert len(new) == n, f"generate returned {len(new)} new tokens, expected {n}"
    return new


@torch.no_grad()
def greedy_margin(model: LlamaForCausalLM, prompt: torch.Tensor, ids: list[int]) -> float:
    """Smallest gap between the top two logits over the steps that chose `ids`."""
    seq = torch.cat([prompt, torch.tensor([ids])], dim=1)
    logits = model(seq).logits[0, prompt.shape[1] - 1:-1]
    top2 = torch.topk(logits, 2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())
