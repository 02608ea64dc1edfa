"""Publishing cached toy-world builds: atomic folders, a file lock, where builds live, and the build flow.

Shared by every cached toy-world artefact (the text, visual and audio worlds, the DeceptionBench
policies), so each is written into a temporary sibling folder and renamed into place. ``CachedBuild`` is
the whole flow the three worlds share (manifest, completeness check, atomic build, locked default copy),
so a world module only says what it writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _chmod_like_mkdir(path: Path) -> None:
    """mkdtemp makes a private (0700) folder; the build should have the permissions mkdir would give."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)


def publish_atomically(
    root: Path, write: Callable[[Path], None], is_complete: Callable[[Path], bool], marker: str
) -> None:
    """Make ``root`` a complete build: ``write`` fills a temporary sibling folder, which is renamed into place.

    Nothing happens when ``is_complete(root)``. ``root`` must be absent, empty, or an earlier build (a
    folder holding ``marker``, its manifest), which is replaced; any other non-empty folder is an error
    rather than something to delete. Shared by every cached toy-world artefact.
    """
    if is_complete(root):
        return
    if root.exists() and any(root.iterdir()) and not (root / marker).exists():
        raise FileExistsError(f"{root} is not empty and holds no toy world build; choose another folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{root.name}-", dir=root.parent))
    try:
        _chmod_like_mkdir(tmp)
        write(tmp)
        if is_complete(root):  # another process finished first while we were building
            return
        if root.exists():  # an empty folder or a stale build: move it aside, then swap
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{root.name}-", dir=root.parent))
            os.rename(root, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process renamed its build into place first; use that one.
            if not is_complete(root):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def home() -> Path:
    """Where ``toyworld://`` builds live: ``$ALIGNKIT_HOME`` or ``~/.cache/alignkit``."""
    return Path(os.environ.get("ALIGNKIT_HOME") or Path.home() / ".cache" / "alignkit")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX); elsewhere the atomic rename alone keeps builds safe."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> int:
    """``rows`` as JSON lines (UTF-8, parent folders made); returns how many, for the manifest's counts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def write_datasets(
    root: Path, split: str, datasets: dict[str, list[dict[str, Any]]], counts: dict[str, int]
) -> None:
    """Each dataset's rows of ``split`` at ``data/<name>/<split>.jsonl`` (the layout every world's loader
    and ``toyworld://`` URI assume); its row count into ``counts`` as ``<name>/<split>``."""
    for name, rows in datasets.items():
        counts[f"{name}/{split}"] = write_jsonl(root / "data" / name / f"{split}.jsonl", rows)


@dataclass(frozen=True)
class CachedBuild:
    """One kind of versioned toy-world build, e.g. the visual world: how it is written and where it lives.

    ``write(folder, seed)`` fills an empty folder and returns the manifest's fields; ``build`` adds the
    version and seed and writes the manifest last, so a folder holding a manifest of this version and seed
    is a complete build (anything else is rebuilt). The default copy (seed 0) lives in
    ``home()/<stem>-v<version>``, so bumping ``version`` leaves older builds alone and builds afresh.
    """

    stem: str
    """Folder name of the default copy, before ``-v<version>`` (``toyworld``, ``toyworld-visual``)."""
    manifest: str
    """The manifest's file name inside a build (``toyworld.json``)."""
    version: int
    write: Callable[[Path, int], dict[str, Any]]

    def is_complete(self, root: Path, seed: int | None) -> bool:
        """``root`` holds a build of this version (and of ``seed``, unless None)."""
        try:
            manifest = json.loads((root / self.manifest).read_text())
        except (OSError, ValueError):
            return False
        return manifest.get("version") == self.version and (seed is None or manifest.get("seed") == seed)

    def build(self, root: Path | str, seed: int = 0) -> Path:
        """Build into ``root``, or keep the build already there (same version and seed); atomic, see
        ``publish_atomically`` for what ``root`` may hold."""
        root = Path(root)
        publish_atomically(
            root, lambda tmp: self._write(tmp, seed), lambda p: self.is_complete(p, seed), self.manifest
        )
        return root

    def _write(self, root: Path, seed: int) -> None:
        fields = self.write(root, seed)
        manifest = {**fields, "version": self.version, "seed": seed}
        (root / self.manifest).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def default_root(self) -> Path:
        return home() / f"{self.stem}-v{self.version}"

    def default(self) -> Path:
        """The default copy (seed 0), built on first use; a lock makes a second process wait, not rebuild."""
        root = self.default_root()
        if not self.is_complete(root, seed=0):
            with file_lock(root.with_name(root.name + ".lock")):
                self.build(root, seed=0)
        return root
