"""One writer per run folder: the ``.lock`` file naming the process (pid + host) that writes it.

The process that prepares a folder holds ``.lock`` until it is done, so a second process can neither
resume nor overwrite a live run. A lock whose process is gone (``kill -9``, a crash) is stale and is taken
over; a lock from another host cannot be checked and counts as live. Locks still held at exit are released.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (exists, is in use, or is not resumable)."""


def is_launch_main_process() -> bool:
    """Rank 0 of a launch (``accelerate launch``/torchrun/deepspeed set ``RANK``; a plain run has none).

    Only that process takes the lock; the others of the same launch write nothing to the folder's top
    level and must not mistake their own main process's lock for a second run.
    """
    return os.environ.get("RANK", "0") == "0"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def lock_owner(path: str | Path) -> dict[str, Any] | None:
    """Who holds the run folder's lock, if a *live* process other than this one does; else None.

    A lock of a process that is gone from this host is stale. A lock from another host cannot be checked
    and counts as live (the message tells the user how to remove it).
    """
    try:
        owner = json.loads((Path(path) / LOCK_FILE).read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):  # unreadable or foreign content: nobody to wait for
        return None
    if host == socket.gethostname() and (pid == os.getpid() or not _process_alive(pid)):
        return None
    return owner


def refuse_if_locked(path: Path) -> None:
    owner = lock_owner(path)
    if owner is not None:
        raise RunFolderError(
            f"run folder {str(path)!r} is in use by process {owner['pid']} on host {owner['host']!r} "
            f"(since {owner.get('started', '?')}); two processes writing one run folder would mix their "
            "steps and checkpoints. Wait for that run to finish (or stop it), or choose another "
            f"run.output_dir. If that process is gone for good, delete {str(path / LOCK_FILE)!r}."
        )


_held_locks: set[Path] = set()


def acquire_run_lock(path: Path) -> None:
    """Write ``path/.lock`` naming this process, atomically; refuse if a live process holds it."""
    lock = path / LOCK_FILE
    tmp = path / f"{TMP_PREFIX}lock-{os.getpid()}"
    started = datetime.datetime.now().isoformat(timespec="seconds")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
    try:
        try:
            os.link(tmp, lock)  # creates the lock with its content in one step, or fails if it exists
        except FileExistsError:
            refuse_if_locked(path)
            os.replace(tmp, lock)  # stale (or already ours): take it over
    finally:
        tmp.unlink(missing_ok=True)
    _held_locks.add(path.resolve())


def release_run_lock(path: str | Path) -> None:
    """Remove the folder's lock if this process holds it (the end of a run, or an error)."""
    path = Path(path).resolve()
    lock = path / LOCK_FILE
    _held_locks.discard(path)
    try:
        if json.loads(lock.read_text()).get("pid") == os.getpid():
            lock.unlink()
    except (OSError, ValueError):
        pass


@atexit.register
def _release_all_run_locks() -> None:
    for path in list(_held_locks):
        release_run_lock(path)
