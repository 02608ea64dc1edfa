#!/usr/bin/env bash
# Create .venv (once) and install alignkit with its test tools. Safe to run again.
#
# torch goes in first and on its own: asked for plainly (or through another package) on a machine
# without a GPU, pip would resolve a multi-GB CUDA build. Without a GPU we pin the CPU build
# (TORCH_SPEC overrides, e.g. TORCH_SPEC="torch==2.13.0+cpu" with your own index settings).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${PIP[@]}" "${TORCH_SPEC:-torch}"
  else
    "${PIP[@]}" "${TORCH_SPEC:-torch==2.13.0}"
  fi
fi
"${PIP[@]}" -e ".[dev]"
echo "alignkit is installed in .venv (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
