#!/usr/bin/env bash
# Creates tools/reference/.venv with a CPU-only torch plus transformers and tokenizers, for
# generating parity fixtures and for the interop check (interop_check.sh). Idempotent:
# re-running only installs what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
TORCH_VERSION="2.13.0"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# Pin torch first so that transformers' dependency resolution reuses it instead of pulling
# a (CUDA) build from the index.
"$py" -m pip install --quiet "torch==$TORCH_VERSION"
"$py" -m pip install --quiet "torch==$TORCH_VERSION" transformers tokenizers safetensors numpy

"$py" - <<'PY'
import torch, transformers, tokenizers, safetensors, numpy
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert not torch.version.cuda, f"expected a CPU torch, got CUDA {torch.version.cuda}"
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"tokenizers {tokenizers.__version__}, safetensors {safetensors.__version__}, numpy {numpy.__version__}")
PY
