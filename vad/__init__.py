"""vad: a reproducible, auditable pipeline for the Chinese Values Alignment Dataset (VAD)."""
import os

# No model hub, dataset hub or analytics is ever reachable from this package: make every library fail fast
# instead of trying the network (docs/methods.md §6). setdefault so a user can still override explicitly.
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
    # Spinning OpenMP threads make two torch processes on 2 cores slow each other 4-35x (measured).
    "OMP_WAIT_POLICY": "PASSIVE",
}.items():
    os.environ.setdefault(_k, _v)

__version__ = "0.1.0"
