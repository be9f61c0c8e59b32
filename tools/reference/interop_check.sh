#!/usr/bin/env bash
# `npm run test:interop`: sets up tools/reference/.venv (idempotent: torch==2.13.0 CPU,
# transformers, tokenizers, safetensors) and checks relora against transformers in both
# directions (see interop_check.py). Extra arguments go to interop_check.py (--work DIR --keep).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup_venv.sh"
# Everything is local: never let transformers wait on a hub it cannot reach.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
exec "$here/.venv/bin/python" "$here/interop_check.py" "$@"
