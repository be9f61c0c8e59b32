"""One training step of a LLaMA model in PyTorch, timed: the yardstick for `relora bench step`.

Run from the repository root, after tools/reference/setup_venv.sh:

    tools/reference/.venv/bin/python tools/reference/bench_torch.py \
        --model llama_60m --mode relora --seq-len 256 --micro-batch 8 --steps 5 --threads 2 --json

`--precision bf16` runs forward and loss under `torch.autocast("cpu", dtype=torch.bfloat16)` (the
mixed precision PyTorch offers on CPUs with AMX / AVX512-BF16); `--compile` wraps the model in
`torch.compile` (inductor; needs a C++ compiler), and the first step's time, which includes the
compilation, is reported apart as `compile_s` and never counted in the timed steps.

The step is what a PyTorch user would write: transformers `LlamaForCausalLM` (eager PyTorch,
fp32, default attention implementation), for `lora`/`relora` PEFT's LoRA on the seven
projections (W frozen; embeddings, norms and lm_head trainable, as in the reference ReLoRA code),
loss with `labels=input_ids`, backward, `clip_grad_norm_`, `torch.optim.AdamW`,
`zero_grad(set_to_none=True)`. ReLoRA's merge happens once per cycle (hundreds of steps), so a
relora step is a lora step. The JSON fields are the ones `relora bench step --json` prints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

# model name -> (hidden, intermediate, heads, layers); spec section 2 / src/nn/config.ts.
NAMED_CONFIGS = {
    "llama_9m": (128, 352, 4, 4),
    "llama_20m": (256, 688, 4, 4),
    "llama_35m": (384, 1024, 8, 6),
    "llama_40m": (416, 1024, 8, 8),
    "llama_60m": (512, 1376, 8, 8),
    "llama_71m": (512, 1368, 8, 12),
    "llama_100m": (640, 1708, 10, 12),
    "llama_130m": (768, 2048, 12, 12),
    "llama_250m": (768, 2560, 16, 24),
    "llama_350m": (1024, 2736, 16, 24),
    "llama_1b": (2048, 5461, 32, 24),
}
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Shapes whose best GFLOP/s is the GEMM peak (src/cli/gemm-bench.ts GEMM_SHAPES), (m, k, n).
GEMM_SHAPES = [(512, 512, 512), (1024, 1024, 1024), (4096, 512, 1536)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=sorted(NAMED_CONFIGS))
    p.add_argument("--mode", default="full", choices=["full", "lora", "relora"])
    p.add_argument("--rank", type=int, default=128)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--dropout", "--lora-dropout", dest="dropout", type=float, default=0.1)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps (after the warm-up)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--vocab-size", type=int, default=32100)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: RELORA_THREADS or all cores)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="transformers attention implementation")
    p.add_argument("--lora-impl", default="peft", choices=["peft", "plain"],
                   help="peft (LoraConfig + get_peft_model) or a plain frozen-W + B·A module")
    p.add_argument("--frozen-bf16", action="store_true",
                   help="lora/relora: frozen W stored in bfloat16 and multiplied in bf16 (plain LoRA module; PEFT's layer "
                        "cannot mix an fp32 input with a bf16 base weight)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compile time reported apart)")
    p.add_argument("--gemm-reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    for name in ("rank", "seq_len", "micro_batch", "steps", "vocab_size", "gemm_reps"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.warmup < 0:
        p.error(f"--warmup must be >= 0, got {a.warmup}")
    if not 0 <= a.dropout < 1:
        p.error(f"--dropout must be in [0, 1), got {a.dropout}")
    return a


def default_threads() -> int:
    env = os.environ.get("RELORA_THREADS")
    if env is not None:
        if not env.isdigit() or int(env) < 1:
            raise SystemExit(f"RELORA_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return os.cpu_count() or 1


def peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def step_flops(d: int, f: int, layers: int, vocab: int, mode: str, rank: int, batch: int, seq: int) -> float:
    """Model FLOPs of one step, counted as src/bench/flops.ts does (must stay identical)."""
    tok = batch * seq
    shapes = [(d, d)] * 4 + [(d, f), (d, f), (f, d)]
    per_layer = 0.0
    for in_f, out_f in shapes:
        if mode == "full":
            per_layer += 6.0 * tok * in_f * out_f
        else:
            per_layer += 4.0 * tok * in_f * out_f + 6.0 * tok * rank * (in_f + out_f)
    # Causal attention: q·kᵀ and p·v over the lower triangle, forward 2, backward 4 products' worth.
    per_layer += 6.0 * batch * d * seq * seq
    return layers * per_layer + 6.0 * tok * d * vocab


def gemm_peak_gflops(torch, reps: int, dtype=None) -> float:
    """Best median GFLOP/s of torch.mm over GEMM_SHAPES and all four transposes (fp32, or bf16 operands)."""
    best = 0.0
    gen = torch.Generator().manual_seed(7)
    dtype = dtype or torch.float32
    for m, k, n in GEMM_SHAPES:
        for ta in (False, True):
            for tb in (False, True):
                a = torch.rand(k, m, generator=gen) if ta else torch.rand(m, k, generator=gen)
                b = torch.rand(n, k, generator=gen) if tb else torch.rand(k, n, generator=gen)
                aa, bb = (a.t() if ta else a).to(dtype), (b.t() if tb else b).to(dtype)
                out = torch.empty(m, n, dtype=dtype)
                times = []
                for i in range(reps + 2):
                    t0 = time.perf_counter()
                    torch.mm(aa, bb, out=out)
                    dt = time.perf_counter() - t0
                    if i >= 2:
                        times.append(dt)
                best = max(best, 2.0 * m * n * k / statistics.median(times) / 1e9)
    return best


class PlainLora:
    """Frozen W plus scale·B·(A·dropout(x)), the same module PEFT builds, without PEFT."""

    @staticmethod
    def wrap(torch, model, rank: int, alpha: float, dropout: float, frozen_bf16: bool = False) -> None:
        nn = torch.nn
        F = torch.nn.functional

        class LoraLinear(nn.Module):
            def __init__(self, base: nn.Linear):
                super().__init__()
                self.base = base
                base.weight.requires_grad_(False)
                if frozen_bf16:
                    base.weight.data = base.weight.data.to(torch.bfloat16)
                self.lora_A = nn.Linear(base.in_features, rank, bias=False)
                self.lora_B = nn.Linear(rank, base.out_features, bias=False)
                nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
                nn.init.zeros_(self.lora_B.weight)
                self.drop = nn.Dropout(dropout)
                self.scaling = alpha / rank

            def forward(self, x):
                if frozen_bf16:
                    base = F.linear(x.to(torch.bfloat16), self.base.weight).float()
                else:
                    base = self.base(x)
                return base + self.lora_B(self.lora_A(self.drop(x))) * self.scaling

        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if name in PROJECTIONS and isinstance(child, nn.Linear):
                    setattr(module, name, LoraLinear(child))


def build_model(torch, a: argparse.Namespace):
    from transformers import LlamaConfig, LlamaForCausalLM

    d, f, heads, layers = NAMED_CONFIGS[a.model]
    cfg = LlamaConfig(
        vocab_size=a.vocab_size, hidden_size=d, intermediate_size=f, num_attention_heads=heads,
        num_key_value_heads=heads, num_hidden_layers=layers, max_position_embeddings=max(a.seq_len, 1024),
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, hidden_act="silu", attn_implementation=a.attn,
    )
    model = LlamaForCausalLM(cfg).float()
    if a.mode == "full":
        return model
    if a.lora_impl == "peft" and not a.frozen_bf16:
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=a.dropout, target_modules=PROJECTIONS,
                          bias="none", init_lora_weights=True)
        model = get_peft_model(model, lcfg)
    else:
        PlainLora.wrap(torch, model, a.rank, a.alpha, a.dropout, a.frozen_bf16)
    # The reference ReLoRA code trains everything that is not a wrapped W: embeddings, norms, lm_head.
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)
        elif name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight") or "norm" in name:
            p.requires_grad_(True)
        else:
            p.requires_grad_(False)
    return model


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    threads = a.threads if a.threads is not None else default_threads()
    import warnings

    import torch

    # transformers' own deprecation notices are noise on stderr here.
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)
    model = build_model(torch, a)
    model.train()
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    # Counted as fp32 like ours (src/relora/accounting.ts), whatever dtype the frozen W has here.
    n_total = sum(p.numel() for p in params)
    n_train = sum(p.numel() for p in trainable)
    opt = torch.optim.AdamW(trainable, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    gen = torch.Generator().manual_seed(a.seed + 1)
    batches = [torch.randint(0, a.vocab_size, (a.micro_batch, a.seq_len), generator=gen) for _ in range(4)]

    fwd = torch.compile(model) if a.compile else model
    bf16 = a.precision == "bf16"

    def step(ids):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fwd(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, a.clip_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.item()

    times, losses, first_s = [], [], 0.0
    # With --compile the first step compiles: it is always run, untimed, and reported apart.
    warmup = max(a.warmup, 1) if a.compile else a.warmup
    for i in range(warmup + a.steps):
        t0 = time.perf_counter()
        losses.append(step(batches[i % len(batches)]))
        dt = time.perf_counter() - t0
        if i == 0:
            first_s = dt
        if i >= warmup:
            times.append(dt)
    peak = peak_rss_bytes()
    gemm_peak = gemm_peak_gflops(torch, a.gemm_reps)
    gemm_peak_bf16 = gemm_peak_gflops(torch, a.gemm_reps, torch.bfloat16)

    d, f, _, layers = NAMED_CONFIGS[a.model]
    flops = step_flops(d, f, layers, a.vocab_size, a.mode, a.rank, a.micro_batch, a.seq_len)
    med = statistics.median(times)
    tokens = a.micro_batch * a.seq_len
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [med, med, med]
    record = {
        "impl": "pytorch",
        "model": a.model,
        "mode": a.mode,
        "rank": a.rank if a.mode != "full" else None,
        "seq_len": a.seq_len,
        "micro_batch": a.micro_batch,
        "vocab_size": a.vocab_size,
        "steps": a.steps,
        "warmup": a.warmup,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "attn": a.attn,
        "precision": a.precision,
        "compile": a.compile,
        "setup": f"{'compile' if a.compile else 'eager'} {a.precision}",
        # The first step's time minus a timed step's: the compilation (0 without --compile).
        "compile_s": max(0.0, first_s - statistics.median(times)) if a.compile else 0.0,
        "lora_impl": ("plain" if a.frozen_bf16 else a.lora_impl) if a.mode != "full" else None,
        "frozen_bf16": a.mode != "full" and a.frozen_bf16,
        "tokens_per_step": tokens,
        "tokens_per_s": tokens / med,
        "step_ms_median": med * 1e3,
        "step_ms_min": min(times) * 1e3,
        "step_ms_max": max(times) * 1e3,
        "step_ms_iqr": (q[2] - q[0]) * 1e3,
        "peak_rss_bytes": peak,
        "params_total": n_total,
        "params_trainable": n_train,
        # Parameters, gradients and AdamW's two moments, fp32 (what src/relora/accounting.ts counts).
        "state_bytes": 4 * n_total + 4 * n_train + 8 * n_train,
        "model_flops_per_step": flops,
        "achieved_gflops": flops / med / 1e9,
        "gemm_peak_gflops": gemm_peak,
        "mfu": flops / med / 1e9 / gemm_peak,
        "gemm_peak_bf16_gflops": gemm_peak_bf16,
        "mfu_bf16": flops / med / 1e9 / gemm_peak_bf16,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    if a.json:
        print(json.dumps(record))
    else:
        for k, v in record.items():
            print(f"{k:22s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
