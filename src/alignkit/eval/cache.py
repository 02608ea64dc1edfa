"""The generation cache: every answer a model gave, written the moment it arrives, looked up before asking.

One jsonl file per model identity (``eval/models.model_identity``) in the cache folder (by default the
run's ``generations/``); each line is one answer, keyed by a hash of (identity, conversation, sampling,
seed). So:

- re-scoring (another judge, a fixed metric) reads the answers back and generates nothing;
- a run that crashed, or whose endpoint failed for some samples, is rerun with ``run.resume=true`` and
  asks only for what is missing: failures are never cached, answers always are;
- a different model, sampling setting or prompt is a different key, so nothing stale is ever served.

Lines are appended and flushed one by one, so a crash can cut at most the last line; a torn last line is
ignored on reading, a damaged line anywhere else is an error naming the file and line (the cache was
edited by hand or the disk failed: silently skipping it would silently regenerate or, worse, mis-serve).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignkit.generate.base import SamplingConfig
from alignkit.runs import RunFolderError

CACHE_FORMAT = 1


def generation_key(identity: str, conversation: Sequence[Any], sampling: SamplingConfig, seed: int) -> str:
    """The cache key of one request: equal keys are equal requests to the same model."""
    payload = {
        "identity": identity,
        "conversation": list(conversation),
        "sampling": dataclasses.asdict(sampling),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cache_file(folder: Path, identity: str, label: str) -> Path:
    """``<readable label>-<identity hash>.jsonl``: one file per model, recognisable in a listing. Only the
    hash decides which file is a model's: the same weights under another path or name (another label)
    find the file already there."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    existing = sorted(Path(folder).glob(f"*-{digest}.jsonl")) if Path(folder).is_dir() else []
    if existing:
        return existing[0]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")[:60] or "model"
    return Path(folder) / f"{slug}-{digest}.jsonl"


class GenerationCache:
    """The cached answers of one model (see the module docstring)."""

    def __init__(self, folder: Path, identity: str, label: str) -> None:
        self.path = cache_file(Path(folder), identity, label)
        self.identity = identity
        self.label = label
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        for i, (n, line) in enumerate(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                if i == len(lines) - 1:  # the write a crash cut short: cut it off, so appends start clean
                    self.path.write_text(text[: text.rfind(line)], encoding="utf-8")
                    break
                raise RunFolderError(
                    f"{self.path}, line {n}: not a JSON object ({exc.msg}); only the last line can be cut "
                    "short by a crash, so the cache was edited or damaged. Delete that line (its answer is "
                    "generated again) or the file, and run again."
                ) from None
            if "key" in entry:
                self._entries[entry["key"]] = entry
        else:
            if text and not text.endswith("\n"):  # whole but unterminated: end it before appending
                with self.path.open("a", encoding="utf-8") as f:
                    f.write("\n")

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        """``{"text", "finish_reason"}`` of a cached answer, or None."""
        return self._entries.get(key)

    def put(self, key: str, conversation: Sequence[Any], text: str, finish_reason: str) -> None:
        """Append one answer and flush it to the file before returning (write-through)."""
        entry = {"key": key, "text": text, "finish_reason": finish_reason, "conversation": list(conversation)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with self.path.open("a", encoding="utf-8") as f:
            if new:
                header = {"format": CACHE_FORMAT, "identity": self.identity, "label": self.label}
                f.write(json.dumps(header) + "\n")
            f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            f.flush()
        self._entries[key] = entry
