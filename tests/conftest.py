"""Suite-wide set-up: hermetic, offline, one toy world per test session.

ALIGNKIT_HOME points at a session temp folder so tests never read or write the user's cache, and the
HF offline switches make any accidental hub access fail loudly instead of hanging.
Set ALIGNKIT_TEST_HOME to reuse a toy world between runs while iterating locally.
"""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config):  # noqa: ARG001 - pytest hook signature
    os.environ["ALIGNKIT_HOME"] = os.environ.get("ALIGNKIT_TEST_HOME") or tempfile.mkdtemp(
        prefix="alignkit-test-"
    )
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402 - after the environment is set up above


@pytest.fixture(scope="session", autouse=True)
def _runs_draw_no_plots():
    """Training runs in the test process skip their PNG plots: matplotlib takes ~1 s per run (0.2 s a
    figure) and only a few tests read them. Those are marked ``plots`` (``_plots_when_marked``); the demo
    fixture draws them too. Runs in other processes (the ``cli`` fixture, ``alignkit`` subprocesses) draw
    them as always. Yields the real ``plot_metrics``."""
    from alignkit.train import recorder

    real = recorder.plot_metrics
    recorder.plot_metrics = lambda *args, **kwargs: []
    yield real
    recorder.plot_metrics = real


@pytest.fixture(autouse=True)
def _plots_when_marked(request, monkeypatch, _runs_draw_no_plots):
    if request.node.get_closest_marker("plots") is not None:
        from alignkit.train import recorder

        monkeypatch.setattr(recorder, "plot_metrics", _runs_draw_no_plots)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, _runs_draw_no_plots):
    """``alignkit demo`` run once per test session: its stages double as trained toy-world models. It
    draws every stage's plots (the demo collects them; ``test_demo.py`` reads them)."""
    from alignkit.demo import run_demo
    from alignkit.train import recorder

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recorder, "plot_metrics", _runs_draw_no_plots)
        return run_demo(tmp_path_factory.mktemp("demo") / "demo")


@pytest.fixture(scope="session")
def sft_policy(demo_run):
    """The toy world's SFT policy (HF folder), trained by the demo from random init."""
    return demo_run.out_dir / "sft" / "final"


@pytest.fixture(scope="session")
def deception_policies():
    """The DeceptionBench toy policies (``.honest``, ``.deceptive``: HF folders), trained once per session
    (about 20 s on one thread) and cached under ALIGNKIT_HOME like the toy world."""
    from alignkit.demo_deception import build_deception_policies

    return build_deception_policies()


@pytest.fixture(autouse=True)
def _sigint_handler_left_as_found(request):
    """A test that leaves its own SIGINT handler installed changes Ctrl-C for every later test in the
    process: put the one found back and name the test in a warning (the full suite had such a leak)."""
    import signal
    import warnings

    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        warnings.warn(f"{request.node.nodeid} left the SIGINT handler {after!r} installed", stacklevel=1)
