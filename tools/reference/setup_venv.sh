#!/usr/bin/env bash
# Creates tools/reference/.venv with a CPU-only torch plus transformers, tokenizers and peft, for
# generating parity fixtures, for the interop check (interop_check.sh) and for the PyTorch side of
# `npm run bench:compare` (bench_torch.py wraps the model with peft's LoRA). Idempotent:
# re-running only installs what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
TORCH_VERSION="2.13.0"
PEFT_VERSION="0.21.2"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# Pin torch first so that transformers' dependency resolution reuses it instead of pulling
# a (CUDA) build from the index.
"$py" -m pip install --quiet "torch==$TORCH_VERSION"
"$py" -m pip install --quiet "torch==$TORCH_VERSION" transformers tokenizers safetensors numpy \
  "peft==$PEFT_VERSION"

"$py" - <<'PY'
import torch, transformers, tokenizers, safetensors, numpy, peft
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert not torch.version.cuda, f"expected a CPU torch, got CUDA {torch.version.cuda}"
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"tokenizers {tokenizers.__version__}, safetensors {safetensors.__version__}, numpy {numpy.__version__}, "
      f"peft {peft.__version__}")
PY
