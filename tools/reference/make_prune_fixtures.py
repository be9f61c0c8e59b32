"""PyTorch parity of the default random optimizer-state pruning at 0.999 (issue 15, item 3).

Writes test/fixtures/parity_prune_{reference,shared}.{safetensors,json}: the 30-update ReLoRA run
of make_fixtures.py (same tiny model, batches, A draws, schedule, two merges after updates 11
and 21), with the LoRA moments pruned at each merge as the reference code's `optimizer_reset`
does with random pruning (Lialin et al., ReLoRA, peft_pretraining/training_utils.py):

    for p in lora params: for key in ("exp_avg", "exp_avg_sq"):
        state[p][key].mul_(torch.rand_like(state[p][key]) > 0.999)

`reference` draws one mask per moment (as above); `shared` draws one mask per tensor and applies
it to both moments (relora's default). Both sides prune with the same masks: instead of
torch.rand, the uniforms are relora's counter-based RandomStream (CounterStream in
make_fixtures.py; u_i = (hash32(key, i) >> 8) / 2^24, one key per tensor per draw, tensors in
the optimizer's parameter order), seeded with the JSON's `prune_stream_seed`.

Which seed: under `reference`, an entry of lora_A that keeps exp_avg but loses exp_avg_sq takes
a step of lr·m̂/eps right after a merge (A's gradient is exactly 0 while B = 0), which makes
the run chaotic (README.md, "How tight a test can be"), so no tolerance could hold after it.
The script takes the first seed from 1 on whose masks leave no such entry at either merge,
and says in the JSON how many entries each merge kept, so a test that skips the pruning or
applies a mask to the wrong moment fails.

Run from the repository root: tools/reference/.venv/bin/python tools/reference/make_prune_fixtures.py
"""

from __future__ import annotations

import numpy as np
import torch

import make_fixtures as mf

PRUNE_RATIO = 0.999
MAX_SEED = 10_000


def uniform(stream: mf.CounterStream, n: int) -> np.ndarray:
    """relora's RandomStream.uniform: 24 random bits per entry, exact in float32."""
    key = stream.next_key()
    return (mf.hash32(key, np.arange(n, dtype=np.uint64)) >> np.uint64(8)).astype(np.float64) / 2.0**24


def draw_masks(seed: int, sizes: list[int], shared: bool, merges: int, ratio: float = PRUNE_RATIO) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Keep-masks (m, v) per lora tensor per merge, in relora's draw order."""
    stream = mf.CounterStream(seed)
    out = []
    for _ in range(merges):
        per_tensor = []
        for n in sizes:
            keep_m = uniform(stream, n) > ratio
            keep_v = keep_m if shared else uniform(stream, n) > ratio
            per_tensor.append((keep_m, keep_v))
        out.append(per_tensor)
    return out


def lora_tensors(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The lora_A/lora_B weights in optimizer (named_parameters) order: the order masks are drawn in."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]


def pick_seed(names: list[str], sizes: list[int], shared: bool) -> int:
    """First seed whose masks keep no lora_A exp_avg entry without its exp_avg_sq (see the docstring)."""
    for seed in range(1, MAX_SEED):
        masks = draw_masks(seed, sizes, shared, 2)
        hazard = sum(int((km & ~kv).sum()) for merge in masks for (km, kv), n in zip(merge, names) if "lora_A" in n)
        if hazard == 0:
            return seed
    raise RuntimeError("no seed without hazard entries")


def run(batches: torch.Tensor, dtype: torch.dtype, seed: int, shared: bool, ratio: float = PRUNE_RATIO) -> dict:
    model = mf.build_model().to(dtype)
    model.train()
    gen = torch.Generator().manual_seed(mf.SEED_LORA_A)
    wrapped = mf.wrap_model(model, gen)
    a_init = {f"A_init.{name}": layer.lora_A.weight.detach().float().clone() for name, layer in wrapped.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    lora = lora_tensors(model)
    masks = draw_masks(seed, [p.numel() for _, p in lora], shared, 2, ratio)
    optimizer = mf.make_adamw(params, mf.RELORA_LR)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, mf.cosine_restarts(
        mf.N_UPDATES, mf.RELORA_WARMUP, mf.RELORA_RESTART_WARMUP, mf.RELORA_CYCLE, mf.RELORA_MIN_RATIO))
    losses, lrs, norms, merges_after, kept = [], [], [], [], []
    redraws: dict[str, torch.Tensor] = {}
    snapshot: dict[str, torch.Tensor] = {}
    for u in range(1, mf.N_UPDATES + 1):
        mf.train_updates(model, optimizer, scheduler, params, [batches[u - 1]], (losses, lrs, norms))
        if not mf.should_merge(u):
            continue
        k = len(merges_after) + 1
        for name, layer in wrapped.items():
            a_new = mf.draw_a(gen, mf.LORA_R, layer.in_features)
            redraws[f"A_merge{k}.{name}"] = a_new.clone()
            layer.merge_and_reinit(a_new)
        counts = {"exp_avg": 0, "exp_avg_sq": 0, "both": 0, "lora_A_exp_avg_only": 0}
        with torch.no_grad():
            for (name, p), (keep_m, keep_v) in zip(lora, masks[k - 1]):
                state = optimizer.state[p]
                for key, keep in (("exp_avg", keep_m), ("exp_avg_sq", keep_v)):
                    snapshot[f"merge{k}.pre_prune.{key}.{name}"] = state[key].detach().float().clone()
                    state[key].mul_(torch.from_numpy(keep.reshape(tuple(p.shape))).to(dtype))
                    snapshot[f"merge{k}.{key}.{name}"] = state[key].detach().float().clone()
                    counts[key] += int(keep.sum())
                counts["both"] += int((keep_m & keep_v).sum())
                if "lora_A" in name:
                    counts["lora_A_exp_avg_only"] += int((keep_m & ~keep_v).sum())
        kept.append(counts)
        merges_after.append(u)
    assert merges_after == [11, 21], merges_after
    return {"losses": losses, "lr": lrs, "grad_norm": norms, "merges_after": merges_after, "kept": kept,
            "a_init": a_init, "redraws": redraws, "snapshot": snapshot,
            "final": mf.f32_state(model, prefix="final."), "wrapped": list(wrapped.keys()),
            "lora_order": [n for n, _ in lora]}


def make(variant: str, batches: torch.Tensor) -> None:
    shared = variant == "shared"
    probe = mf.build_model()
    mf.wrap_model(probe, torch.Generator().manual_seed(mf.SEED_LORA_A))
    lora = lora_tensors(probe)
    seed = pick_seed([n for n, _ in lora], [p.numel() for _, p in lora], shared)
    res = run(batches, torch.float32, seed, shared)
    ref64 = run(batches, torch.float64, seed, shared)
    loss_diff = [abs(a - b) for a, b in zip(res["losses"], ref64["losses"])]
    final_diff = {k: (res["final"][k] - ref64["final"][k]).abs().max().item() for k in res["final"]}
    print(f"{variant}: seed {seed}, kept per merge {res['kept']}, max fp64 loss diff {max(loss_diff):.2g}, "
          f"max fp64 final diff {max(final_diff.values()):.2g}")
    assert max(loss_diff) <= mf.STABLE_LOSS_TOL, loss_diff
    assert max(final_diff.values()) <= mf.STABLE_FINAL_TOL, final_diff
    assert mf.losses_decrease(res["losses"]), res["losses"]
    # The pruning must keep something in each moment, or a test could not tell m from v.
    for counts in res["kept"]:
        assert counts["exp_avg"] > 0 and counts["exp_avg_sq"] > 0, counts
    # Without pruning the run must end elsewhere: otherwise the fixture would not test it.
    unpruned = run_unpruned_final_loss(batches)
    assert abs(unpruned - res["losses"][-1]) > 1e-3, (unpruned, res["losses"][-1])
    name = f"parity_prune_{variant}"
    mf.save(f"{name}.safetensors", {
        "batches": batches.to(torch.int32),
        "losses": torch.tensor(res["losses"], dtype=torch.float32),
        **res["a_init"], **res["redraws"], **res["snapshot"], **res["final"],
    })
    mf.save_json(f"{name}.json", {
        "initial_weights": "parity_model.safetensors",
        "n_updates": mf.N_UPDATES,
        "lora": {"r": mf.LORA_R, "alpha": mf.LORA_ALPHA, "dropout": 0.0, "targets": list(mf.LORA_TARGETS)},
        "wrapped_modules": res["wrapped"],
        "optimizer": {"name": "adamw", "lr": mf.RELORA_LR, "betas": list(mf.ADAM_BETAS), "eps": mf.ADAM_EPS,
                      "weight_decay": mf.WEIGHT_DECAY},
        "clip_grad_norm": mf.CLIP,
        "schedule": {"name": "cosine_restarts", "warmup_steps": mf.RELORA_WARMUP,
                     "restart_warmup_steps": mf.RELORA_RESTART_WARMUP, "cycle_length": mf.RELORA_CYCLE,
                     "num_training_steps": mf.N_UPDATES, "min_lr_ratio": mf.RELORA_MIN_RATIO},
        "optimizer_reset": "reference" if variant == "reference" else "shared",
        "prune_ratio": PRUNE_RATIO,
        "prune_stream_seed": seed,
        "prune_order": res["lora_order"],
        "kept_per_merge": res["kept"],
        "final_loss_without_pruning": unpruned,
        "merges_after": res["merges_after"],
        "losses": res["losses"],
        "lr": res["lr"],
        "grad_norm": res["grad_norm"],
        "fp64_loss_abs_diff": loss_diff,
        "fp64_final_max_abs_diff": final_diff,
    })


def run_unpruned_final_loss(batches: torch.Tensor) -> float:
    """The same run with every mask all-ones (nothing pruned): its last loss."""
    return run(batches, torch.float32, 1, True, ratio=-1.0)["losses"][-1]


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    batches = mf.make_batches()
    for variant in ("reference", "shared"):
        make(variant, batches)


if __name__ == "__main__":
    main()
