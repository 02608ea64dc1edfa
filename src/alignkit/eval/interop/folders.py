"""Where a run of another harness's task goes by default (shared by ``external`` and the adapters)."""

from __future__ import annotations

import re


def default_output_dir(prefix: str, task: str) -> str:
    """``runs/eval-<harness>-<task>``, the task's name made safe for a folder name."""
    return f"runs/eval-{prefix}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', task).strip('_')}"
