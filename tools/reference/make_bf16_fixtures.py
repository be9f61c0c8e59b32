"""bf16 mixed-precision parity fixture: the tiny parity model under PyTorch's CPU autocast.

Run from the repository root, after tools/reference/setup_venv.sh and make_fixtures.py (it reads
the model and the input of parity_forward from test/fixtures/):

    tools/reference/.venv/bin/python tools/reference/make_bf16_fixtures.py

Writes test/fixtures/parity_bf16.safetensors: the loss and every parameter gradient of one
forward/backward with `torch.autocast("cpu", dtype=torch.bfloat16)` (what relora's
`precision: bf16` mirrors), and the same in float64 — the exact values both bf16 runs round
away from, so the test can state relora's distance to autocast next to autocast's own error.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "test" / "fixtures"


def load_model(dtype: torch.dtype) -> LlamaForCausalLM:
    cfg = json.loads((FIXTURES / "parity_model.config.json").read_text())
    config = LlamaConfig.from_dict(cfg)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).to(dtype)
    state = load_file(str(FIXTURES / "parity_model.safetensors"))
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    model.train()
    return model


def loss_and_grads(model: LlamaForCausalLM, ids: torch.Tensor, autocast: bool) -> dict[str, torch.Tensor]:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    tensors = {"loss": out.loss.detach().reshape(1).float()}
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.dtype == (torch.float32 if autocast else torch.float64), (name, p.dtype)
        tensors[f"grad.{name}"] = p.grad.detach().float().clone()
    return tensors


def main() -> None:
    torch.manual_seed(0)
    ids = load_file(str(FIXTURES / "parity_forward.safetensors"))["input_ids"].to(torch.int64)
    bf16 = loss_and_grads(load_model(torch.float32), ids, autocast=True)
    fp64 = loss_and_grads(load_model(torch.float64), ids, autocast=False)
    tensors = {f"bf16.{k}": v for k, v in bf16.items()} | {f"fp64.{k}": v for k, v in fp64.items()}
    out = FIXTURES / "parity_bf16.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out), metadata={"torch": torch.__version__})
    print(f"wrote {out.relative_to(REPO_ROOT)}: loss autocast bf16 {bf16['loss'].item():.6f}, float64 {fp64['loss'].item():.6f}")


if __name__ == "__main__":
    main()
