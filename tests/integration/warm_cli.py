"""A fork server for ``alignkit`` commands: import the heavy libraries once, fork a fresh process per command.

Every ``alignkit`` process spends ~5 s of CPU importing torch, transformers, accelerate, peft, deepspeed and
matplotlib before it does anything; the README test runs ~25 of them. This server (a separate process,
started with the test's environment) imports them once, then for each request forks a child that does what
the ``alignkit`` console script does, ``sys.exit(alignkit.cli.main())`` with the request's argv, in the
request's folder, with stdout and stderr in files. Each command still gets its own process (its own
accelerate state, RNG, signal handlers, exit status and ``atexit`` handlers); only the import is shared.

Protocol, one JSON object per line: request ``{"argv": [...], "cwd": ..., "stdout": FILE, "stderr": FILE}``
(or ``"python": CODE`` instead of ``argv``: run the code as ``python -c CODE`` would), answer
``{"rc": N}`` (a child killed by signal S answers ``-S``, as ``subprocess`` does).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "accelerate",
    "peft",
    "deepspeed",
    "torch.utils.tensorboard",
    "matplotlib.pyplot",
    "alignkit.cli",
    "alignkit.eval.runner",
    "alignkit.models.export",
)
"""What an alignkit command imports on its way (the trainers are added from the registry). A module that is
not installed (deepspeed and peft are optional) is skipped: the command imports it, or fails, itself."""


def preload() -> None:
    import matplotlib

    matplotlib.use("Agg")  # what alignkit's plotting does before it imports pyplot
    from alignkit.train.registry import TRAINERS

    for name in (*PRELOAD, *(module for module, *_ in TRAINERS.values())):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def run_child(request: dict[str, Any]) -> int:
    """In the forked child: the command, as the console script (or ``python -c``) would run it."""
    os.chdir(request["cwd"])
    for fd, key in ((1, "stdout"), (2, "stderr")):
        target = os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    try:
        if "python" in request:
            sys.argv = ["-c"]
            sys.path[0] = ""  # as python -c: the current folder first
            exec(compile(request["python"], "<string>", "exec"), {"__name__": "__main__"})
            code: Any = 0
        else:
            from alignkit.cli import main

            sys.path[0] = str(Path(sys.executable).parent)  # as the console script: its own folder first
            sys.argv = list(request["argv"])
            code = main(sys.argv[1:])
    except SystemExit as stop:
        code = stop.code
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    return code


def serve(plots: bool = True) -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)  # answers only: what libraries print goes to stderr
    os.dup2(2, 1)
    preload()
    if not plots:  # the runs skip their PNG plots, as in the test process (tests/conftest.py)
        from alignkit.train import recorder

        recorder.plot_metrics = lambda *args, **kwargs: []
    # fork() copies only the calling thread: a Python thread a library started while importing would be
    # missing in every child, with any lock it held. None does today; fail loudly if one ever does. (The
    # native threads here are numpy's and scipy's OpenBLAS pools, which shut down and restart around a
    # fork by their own pthread_atfork handlers, as for any multiprocessing worker.)
    assert threading.active_count() == 1, f"threads after preloading: {threading.enumerate()}"
    print(json.dumps({"ready": True}), file=protocol)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            protocol.close()
            null = os.open(os.devnull, os.O_RDONLY)  # the requests are not the command's input
            os.dup2(null, 0)
            code = 1
            try:
                code = run_child(request)
                atexit._run_exitfuncs()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        print(json.dumps({"rc": rc}), file=protocol)


class WarmCLI:
    """The test's handle on the server (a context manager): ``run(cwd, argv=...)`` or ``run(cwd,
    python=...)`` -> (returncode, stdout, stderr). With ``plots=False`` training runs skip their PNG plots
    (~1 s of matplotlib each), for a test that never reads them."""

    def __init__(
        self, env: dict[str, str], workdir: Path, timeout: float = 900, *, plots: bool = True
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.timeout, self.count = workdir, timeout, 0
        self.log = workdir / "server.stderr"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *([] if plots else ["--no-plots"])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            env=env,
            text=True,
            start_new_session=True,  # one process group: a timeout ends the server and its child together
        )
        self._answer()  # ready

    def _answer(self) -> dict[str, Any]:
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"no answer in {self.timeout} s; server log: {self.log.read_text()[-3000:]}")
        line = self.proc.stdout.readline()
        assert line, f"the server died: {self.log.read_text()[-3000:]}"
        return json.loads(line)

    def run(
        self, cwd: Path, *, argv: list[str] | None = None, python: str | None = None
    ) -> tuple[int, str, str]:
        self.count += 1
        out, err = self.workdir / f"{self.count}.stdout", self.workdir / f"{self.count}.stderr"
        request: dict[str, Any] = {"cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
        request.update({"argv": argv} if python is None else {"python": python})
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._answer()["rc"], out.read_text(), err.read_text()

    def __enter__(self) -> WarmCLI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


if __name__ == "__main__":
    serve(plots="--no-plots" not in sys.argv[1:])
