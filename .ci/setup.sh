# Sourced by .ci/build and .ci/test: a project venv with vad installed, offline flags, and data/ from DVC.
# Idempotent: a second call reinstalls nothing unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Nothing in this project may reach a model hub, dataset hub or analytics endpoint (docs/methods.md §6).
export DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
       HF_HUB_DISABLE_TELEMETRY=1 GX_ANALYTICS_ENABLED=false TOKENIZERS_PARALLELISM=false
export HF_HOME="$PWD/build/cache/hf"

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.vad-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # torch is pinned in the same call: the CPU wheel 2.13.0 (an unpinned torch pulls a multi-GB CUDA build).
  .venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 -e '.[dev]'
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

# data/ is tracked by data.dvc; its default remote is the bundled store .dvcstore/ inside the repo.
dvc pull --quiet data.dvc
