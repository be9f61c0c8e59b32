"""Checks relora against the real transformers, both ways (`npm run test:interop`).

    tools/reference/.venv/bin/python tools/reference/interop_check.py [--work DIR] [--keep]

relora -> transformers: a small model trained by relora (ReLoRA, with merges) and exported with
`relora export` loads with AutoModelForCausalLM and AutoTokenizer; its logits on a fixed text
match relora's within 1e-4 (float32), and the tokenizer gives identical ids (and decodes back
the same text) for strings with Unicode, emoji, runs of whitespace, newlines and the empty
string.

transformers -> relora: random-weight LLaMAs created and saved by transformers import into
relora with equal logits (1e-4) and identical greedy generation of 20 tokens:
grouped-query attention (float32, single file), grouped-query attention (float16), tied
embeddings (bfloat16, sharded with an index file).

metadata: a Llama-3-like folder saved by transformers (BOS 128000 put before every text, EOS
128001, 8192 positions), continued by `relora train --init-from` and exported, keeps its
metadata: config.json equal but for the weights' dtype, tokenizer.json, tokenizer_config.json
and generation_config.json byte for byte (special_tokens_map.json too where there is one), and AutoTokenizer gives the
export's prompts the same ids as the source's and as `relora generate` gives the run's.

Prints one line per check and a final "N passed, M failed"; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from interop_models import greedy, greedy_margin, prompt_ids, random_llama  # noqa: E402

BPE_TOKENIZER = REPO / "test" / "fixtures" / "data" / "byte-level-bpe" / "tokenizer.json"
LLAMA3_BOS, LLAMA3_EOS = 128000, 128001
KEPT_VERBATIM = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]

LOGIT_TOL = 1e-4
GREEDY_TOKENS = 20


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}{f' ({detail})' if detail else ''}", flush=True)


def llama3_like_folder(folder: Path) -> None:
    """A small model saved by transformers with Llama-3's special tokens and context length."""
    cfg = LlamaConfig(vocab_size=128256, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                      num_key_value_heads=1, num_hidden_layers=1, max_position_embeddings=8192, rms_norm_eps=1e-5,
                      rope_theta=500000.0, bos_token_id=LLAMA3_BOS, eos_token_id=LLAMA3_EOS, tie_word_embeddings=False)
    torch.manual_seed(5)
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    tok = json.loads(BPE_TOKENIZER.read_text())
    # Llama 3's BPE vocabulary fills ids 0..127999 and its special tokens follow; pad ours alike
    # (tokenizers renumbers added tokens that would leave a gap).
    vocab = tok["model"]["vocab"]
    for i in range(len(vocab), LLAMA3_BOS):
        vocab[f"<|reserved_{i}|>"] = i

    def special(i: int, s: str) -> dict:
        return {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}

    tok["added_tokens"] += [special(LLAMA3_BOS, "<|begin_of_text|>"), special(LLAMA3_EOS, "<|end_of_text|>")]
    bos = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
    tok["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [LLAMA3_BOS], "tokens": ["<|begin_of_text|>"]}},
    }
    raw = folder / "raw-tokenizer.json"
    raw.write_text(json.dumps(tok))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(raw), bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                                   model_max_length=8192)
    fast.save_pretrained(folder)
    raw.unlink()


def metadata_round_trip(work: Path, c: Checks) -> None:
    src = work / "llama3-like"
    llama3_like_folder(src)
    t0 = time.time()
    driver("init-export", str(src), str(work))
    ours = json.loads((work / "relora.json").read_text())
    hf = work / "hf"
    print(f"relora continued {src.name} with --init-from and exported it in {time.time() - t0:.0f} s "
          f"(files: {', '.join(sorted(p.name for p in hf.iterdir()))})")
    a = json.loads((src / "config.json").read_text())
    b = json.loads((hf / "config.json").read_text())
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    c.check(set(changed) <= {"dtype", "torch_dtype"}, "config.json of the export equals the source's (the weights' dtype aside)",
            ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in changed))
    cfg = AutoConfig.from_pretrained(hf)
    got = (cfg.bos_token_id, cfg.eos_token_id, cfg.max_position_embeddings)
    c.check(got == (LLAMA3_BOS, LLAMA3_EOS, 8192), "transformers reads BOS 128000, EOS 128001 and 8192 positions from the export", str(got))
    for f in KEPT_VERBATIM:
        if (src / f).exists():
            c.check((hf / f).exists() and (hf / f).read_bytes() == (src / f).read_bytes(), f"{f} carried over byte for byte")
        else:
            c.check(not (hf / f).exists(), f"{f}: the source has none, nor has the export")
    tok_src = AutoTokenizer.from_pretrained(src)
    tok_out = AutoTokenizer.from_pretrained(hf)
    c.check((tok_out.bos_token_id, tok_out.eos_token_id) == (LLAMA3_BOS, LLAMA3_EOS), "AutoTokenizer of the export: BOS and EOS ids",
            f"{tok_out.bos_token_id}, {tok_out.eos_token_id}")
    c.check(ours["prompt_prefix"] == [LLAMA3_BOS] and ours["eos_ids"] == [LLAMA3_EOS],
            "relora generate prompts the run with BOS and stops at Llama-3's EOS", f"prefix {ours['prompt_prefix']}, eos {ours['eos_ids']}")
    for probe in ours["probes"]:
        text = probe["text"]
        ids_src, ids_out = tok_src(text)["input_ids"], tok_out(text)["input_ids"]
        c.check(ids_out == ids_src == probe["ids"], f"prompt ids of {json.dumps(text, ensure_ascii=False)[:40]}: source, export, relora generate",
                "" if ids_out == ids_src == probe["ids"] else f"source {ids_src[:8]}, export {ids_out[:8]}, relora {probe['ids'][:8]}")
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    c.check(model.generation_config.eos_token_id == AutoModelForCausalLM.from_pretrained(src).generation_config.eos_token_id,
            "generation config of the export: the source's EOS", str(model.generation_config.eos_token_id))


def driver(*args: str) -> None:
    cmd = ["node", "--import", "tsx", str(HERE / "interop_driver.ts"), *args]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"interop driver failed: {' '.join(args)} (exit {r.returncode})")


def relora_to_transformers(work: Path, c: Checks) -> None:
    t0 = time.time()
    driver("train-export", str(work))
    ours = json.loads((work / "relora.json").read_text())
    hf = work / "hf"
    print(f"relora trained and exported a model in {time.time() - t0:.0f} s "
          f"({ours['merges']} ReLoRA merges; files: {', '.join(sorted(p.name for p in hf.iterdir()))})")
    c.check(ours["checkpoint_max_abs_lora_b"] > 0, "the exported checkpoint holds trained LoRA factors (so export merged them)",
            f"max |lora_B| = {ours['checkpoint_max_abs_lora_b']:.3g}")

    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(hf)
    c.check(type(model).__name__ == "LlamaForCausalLM", "AutoModelForCausalLM loads the export", type(model).__name__)
    c.check(model.config.vocab_size == ours["vocab_size"], "config.json vocab_size", str(model.config.vocab_size))
    c.check(tok.eos_token_id == ours["eos_id"] and model.config.eos_token_id == ours["eos_id"],
            "EOS id agrees (tokenizer, config.json)", f"{tok.eos_token_id}, {model.config.eos_token_id} vs {ours['eos_id']}")

    ids = tok(ours["text"])["input_ids"]
    c.check(ids == ours["text_ids"], "tokenizer ids of the logits text")
    with torch.no_grad():
        logits = model(torch.tensor([ours["text_ids"]])).logits[0].float()
    theirs = torch.tensor(ours["logits"], dtype=torch.float32).view_as(logits)
    diff = float((logits - theirs).abs().max())
    c.check(diff <= LOGIT_TOL, f"logits of relora's trained model vs transformers' load of the export (float32, {len(ids)} tokens)",
            f"max |diff| = {diff:.2e}, max |logit| = {float(logits.abs().max()):.2f}")

    prompt = torch.tensor([ours["greedy_prompt"]])
    gen = greedy(model, prompt, GREEDY_TOKENS)
    c.check(gen == ours["greedy"], f"greedy generation of {GREEDY_TOKENS} tokens by the trained model identical",
            f"smallest top-2 logit gap {greedy_margin(model, prompt, gen):.2e}" if gen == ours["greedy"]
            else f"transformers {gen} vs relora {ours['greedy']}")

    for probe in ours["probes"]:
        text = probe["text"]
        hf_ids = tok(text)["input_ids"]
        decoded = tok.decode(hf_ids)
        same = hf_ids == probe["ids"]
        c.check(same and decoded == probe["decoded"] == text, f"tokenizer ids and decode of {json.dumps(text, ensure_ascii=False)[:48]}",
                "" if same else f"transformers {hf_ids[:12]} vs relora {probe['ids'][:12]}")


def transformers_to_relora(work: Path, c: Checks) -> None:
    variants = [
        ("gqa", 101, torch.float32, None, "grouped-query attention, float32"),
        ("gqa", 202, torch.float16, None, "grouped-query attention, float16"),
        ("tied", 303, torch.bfloat16, "20KB", "tied embeddings, bfloat16, sharded"),
    ]
    for kind, seed, dtype, shard, label in variants:
        folder = work / f"{kind}-{seed}"
        model = random_llama(kind, seed).to(dtype)
        model.save_pretrained(folder, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
        if shard:
            c.check((folder / "model.safetensors.index.json").exists(), f"{label}: transformers wrote a sharded folder")
        # Both sides compute in float32 from the weights as saved.
        ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        vocab = ref.config.vocab_size
        ids = prompt_ids(vocab, seed + 1, 2, 16)
        prompt = prompt_ids(vocab, seed + 2, 1, 6)
        with torch.no_grad():
            logits = ref(ids).logits.float()
        gen = greedy(ref, prompt, GREEDY_TOKENS)
        margin = greedy_margin(ref, prompt, gen)

        request = {"dir": str(folder), "input_ids": ids.tolist(), "prompt": prompt[0].tolist(),
                   "new_tokens": GREEDY_TOKENS, "out": str(folder / "relora.json")}
        (folder / "request.json").write_text(json.dumps(request))
        driver("import", str(folder / "request.json"))
        ours = json.loads((folder / "relora.json").read_text())
        theirs = torch.tensor(ours["logits"], dtype=torch.float32).view_as(logits)
        diff = float((logits - theirs).abs().max())
        c.check(diff <= LOGIT_TOL, f"{label}: logits equal", f"max |diff| = {diff:.2e}")
        c.check(ours["greedy"] == gen, f"{label}: greedy generation of {GREEDY_TOKENS} tokens identical",
                f"smallest top-2 logit gap {margin:.3f}" if ours["greedy"] == gen else f"transformers {gen} vs relora {ours['greedy']}")
        expect_kv = ref.config.num_key_value_heads
        c.check(ours["num_key_value_heads"] == expect_kv and ours["tie_word_embeddings"] == ref.config.tie_word_embeddings,
                f"{label}: relora read the architecture", f"kv heads {ours['num_key_value_heads']}, tied {ours['tie_word_embeddings']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    work = args.work or Path(tempfile.mkdtemp(prefix="relora-interop-"))
    work.mkdir(parents=True, exist_ok=True)
    c = Checks()
    try:
        print("== relora -> transformers")
        relora_to_transformers(work / "relora-export", c)
        print("== transformers -> relora")
        transformers_to_relora(work / "hf-import", c)
        print("== metadata of a continued model")
        metadata_round_trip(work / "metadata", c)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"interop: {c.passed} passed, {c.failed} failed")
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
