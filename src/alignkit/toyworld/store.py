"""Publishing cached toy-world builds: atomic folders, a file lock, and where builds live.

Shared by every cached toy-world artefact (the text world, the visual world, the DeceptionBench
policies), so each is written into a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


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
