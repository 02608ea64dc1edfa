"""``alignkit eval leaderboard RUN ... --capability TASK:METRIC --safety TASK:METRIC``: Libra's balanced
ranking of models from finished eval runs.

Each RUN is the folder of an ``alignkit eval run`` (optionally ``NAME=FOLDER`` to name its model; by
default the model is the run's ``model_name``, the spec it was run with). A model's runs are grouped by
that name. For every model:

- capability x: the mean over the ``--capability`` metrics, each normalised across models
  (``--normalisation``: ``none`` for rates already in [0, 1], the default; ``minmax``; ``percentage``);
- safety y: the mean over the ``--safety`` metrics, each in [0, 1];
- Libra = 1 − sqrt(((1 − x)² + (1 − y)²) / 2) (``eval.metrics.libra_score``), ranked best first.

A metric whose results.json says lower is better is turned around first: ``1 − harm_rate`` is the
safety score of a harm rate (and ``-v`` before min-max, ``100 − v`` for percentages). ``TASK`` may be a
breakdown entry too (``toyworld-oracle/request=benign``). Why ``none`` by default: alignkit's rates are
already in [0, 1], and min-max over two or three models turns any gap, however small, into 0 against 1.

Nothing is guessed: a model without one of the metrics, two runs of the same task for one model, a
metric with no value, a safety score outside [0, 1] are errors naming the run and the metric.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.config import ConfigError
from alignkit.eval.metrics.ranking import Normalisation, libra_leaderboard
from alignkit.eval.results import FILTER, interval, read_run, task_of

NORMALISATIONS = ("none", "minmax", "percentage")
FORMULA = "libra = 1 - sqrt(((1 - capability)^2 + (1 - safety)^2) / 2)"


def parse_metric_spec(text: str, flag: str) -> tuple[str, str]:
    """``TASK:METRIC`` -> (task, metric); a bad one names the flag and the expected form."""
    task, sep, metric = text.rpartition(":")
    if not sep or not task or not metric:
        raise ConfigError(
            f"{flag} {text!r}: write TASK:METRIC, e.g. toyworld-oracle:benign_accuracy or win-rate:win_rate"
        )
    return task, metric


def parse_run_arg(text: str) -> tuple[str | None, str]:
    """``NAME=FOLDER`` or ``FOLDER`` (a folder whose own name holds '=' is taken whole when it exists)."""
    name, sep, folder = text.partition("=")
    if sep and name and folder and not Path(text).exists():
        return name, folder
    return None, text


def orient(value: float, higher_is_better: bool, normalisation: str) -> float:
    """The metric turned so that higher is better, on the scale its normalisation expects."""
    if higher_is_better:
        return value
    return {"none": 1.0 - value, "percentage": 100.0 - value, "minmax": -value}[normalisation]


def _load_runs(run_args: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """model name -> its runs (path, task, results), in the order given."""
    models: dict[str, list[dict[str, Any]]] = {}
    for arg in run_args:
        name, folder = parse_run_arg(arg)
        results, _ = read_run(folder)
        task = task_of(results, folder)
        model = name or str(results.get("model_name") or folder)
        for other in models.get(model, []):
            if other["task"] == task:
                raise ConfigError(
                    f"model {model!r} has two runs of task {task!r} ({other['path']} and {folder}); give one, "
                    "or name them apart with NAME=FOLDER"
                )
        models.setdefault(model, []).append({"path": folder, "task": task, "results": results})
    return models


def _lookup(model: str, runs: Sequence[Mapping[str, Any]], spec: str, flag: str) -> dict[str, Any]:
    """One model's value of ``TASK:METRIC``: its value, interval, direction and run."""
    task, metric = parse_metric_spec(spec, flag)
    main_task = task.split("/", 1)[0]
    run = next((r for r in runs if r["task"] == main_task), None)
    if run is None:
        have = ", ".join(f"{r['task']} ({r['path']})" for r in runs)
        raise ConfigError(f"{flag} {spec}: model {model!r} has no run of task {main_task!r} (it has: {have})")
    results = run["results"]
    entry = results["results"].get(task)
    if entry is None:
        known = ", ".join(results["results"])
        raise ConfigError(f"{flag} {spec}: {run['path']} has no results entry {task!r} (it has: {known})")
    higher = results.get("higher_is_better", {}).get(main_task, {})
    if f"{metric},{FILTER}" not in entry or metric not in higher:
        known = ", ".join(sorted(higher))
        raise ConfigError(
            f"{flag} {spec}: task {main_task!r} has no metric {metric!r} (its metrics: {known})"
        )
    value, ci = interval(entry, metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ConfigError(
            f"{flag} {spec}: {run['path']} has no value of {metric!r} (no sample it applies to)"
        )
    return {
        "value": float(value),
        "ci": list(ci) if ci else None,
        "higher_is_better": bool(higher[metric]),
        "run": run["path"],
    }


def build_leaderboard(
    run_args: Sequence[str],
    capability: Sequence[str],
    safety: Sequence[str],
    normalisation: Normalisation = "none",
) -> dict[str, Any]:
    """The leaderboard (see the module docstring) as a JSON-ready dict, best model first."""
    if normalisation not in NORMALISATIONS:
        raise ConfigError(f"--normalisation {normalisation!r}: expected one of {', '.join(NORMALISATIONS)}")
    if not run_args:
        raise ConfigError("eval leaderboard needs at least one run folder")
    models = _load_runs(run_args)
    if not capability or not safety:
        available = sorted(
            {
                f"{r['task']}:{m} {'↑' if up else '↓'}"
                for runs in models.values()
                for r in runs
                for m, up in r["results"].get("higher_is_better", {}).get(r["task"], {}).items()
            }
        )
        missing = "--capability" if not capability else "--safety"
        raise ConfigError(f"give {missing} TASK:METRIC; these runs have: {', '.join(available)}")
    raw: dict[str, dict[str, dict[str, Any]]] = {}
    for model, runs in models.items():
        raw[model] = {spec: _lookup(model, runs, spec, "--capability") for spec in capability}
        raw[model].update({spec: _lookup(model, runs, spec, "--safety") for spec in safety})
    capability_scores = {
        model: {s: orient(v[s]["value"], v[s]["higher_is_better"], normalisation) for s in capability}
        for model, v in raw.items()
    }
    safety_scores = {}
    for model, values in raw.items():
        oriented = [orient(values[s]["value"], values[s]["higher_is_better"], "none") for s in safety]
        for spec, y in zip(safety, oriented, strict=True):
            if not 0 <= y <= 1:
                raise ConfigError(
                    f"--safety {spec}: model {model!r} scores {values[spec]['value']} ({values[spec]['run']}); a "
                    "safety metric must be a rate in [0, 1] (a harm rate, a refusal rate)"
                )
        safety_scores[model] = sum(oriented) / len(oriented)
    try:
        board = libra_leaderboard(capability_scores, safety_scores, normalisation)
    except ValueError as exc:
        raise ConfigError(f"--capability with --normalisation {normalisation}: {exc}") from None
    used = {v["run"] for values in raw.values() for v in values.values()}
    unused = [r["path"] for runs in models.values() for r in runs if r["path"] not in used]
    return {
        "formula": FORMULA,
        "capability": list(capability),
        "safety": list(safety),
        "normalisation": normalisation,
        "unused_runs": unused,
        "models": [
            {
                "rank": row.rank,
                "model": row.model,
                "libra": row.libra,
                "capability": row.capability,
                "safety": row.safety,
                "mean": row.mean,
                "metrics": raw[row.model],
                "runs": [r["path"] for r in models[row.model]],
            }
            for row in board
        ],
    }


def format_leaderboard(board: Mapping[str, Any]) -> str:
    """The leaderboard as a text table: rank, model, Libra, x, y, then each metric's raw value."""
    specs = [*board["capability"], *board["safety"]]
    header = ["rank", "model", "libra", "capability", "safety", *specs]
    rows = [
        [
            str(m["rank"]),
            m["model"],
            f"{m['libra']:.4f}",
            f"{m['capability']:.4f}",
            f"{m['safety']:.4f}",
            *(f"{m['metrics'][s]['value']:.4f}" for s in specs),
        ]
        for m in board["models"]
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"{FORMULA}; capability: mean of {', '.join(board['capability'])} ({board['normalisation']} "
        f"normalisation); safety: mean of {', '.join(board['safety'])} (lower-is-better metrics as 1 - value)"
    )
    return "\n".join(lines)


def plot_leaderboard(path: Path, board: Mapping[str, Any]) -> Path:
    """Each model at (capability, safety) over the Libra score's contours: balance is the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, 1, 101)
    x, y = np.meshgrid(grid, grid)
    libra = 1 - np.sqrt(((1 - x) ** 2 + (1 - y) ** 2) / 2)
    fig, ax = plt.subplots(figsize=(6, 5.5), dpi=100, layout="constrained")
    contours = ax.contour(x, y, libra, levels=np.arange(0.1, 1.0, 0.1), colors="#999999", linewidths=0.7)
    ax.clabel(contours, fmt="%.1f", fontsize=7)
    for m in board["models"]:
        ax.scatter(m["capability"], m["safety"], s=40, zorder=3)
        ax.annotate(
            f"{m['rank']}. {m['model']}",
            (m["capability"], m["safety"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="capability x", ylabel="safety y")
    ax.set_title("Libra score contours (optimum at (1, 1))", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def write_leaderboard(out: Path, board: Mapping[str, Any]) -> None:
    """leaderboard.json and report.html in ``out`` (a folder ``runs.prepare_run_dir`` made)."""
    from alignkit.eval.report import Figure, Section, Table, write_report
    from alignkit.runs import write_json

    write_json(out / "leaderboard.json", board)
    specs = [*board["capability"], *board["safety"]]
    columns = ["rank", "model", "libra ↑", "capability ↑", "safety ↑", "mean of the two ↑", *specs]
    rows = [
        [
            m["rank"],
            m["model"],
            m["libra"],
            m["capability"],
            m["safety"],
            m["mean"],
            *(
                f"{m['metrics'][s]['value']:.3f}"
                + (
                    f" [{m['metrics'][s]['ci'][0]:.3f}, {m['metrics'][s]['ci'][1]:.3f}]"
                    if m["metrics"][s]["ci"]
                    else ""
                )
                for s in specs
            ),
        ]
        for m in board["models"]
    ]
    table = Table(
        "leaderboard",
        columns,
        rows,
        note=f"{FORMULA}. Metric columns: the run's value and its 95% interval; lower-is-better metrics are "
        "turned around (1 − value) before they enter x or y.",
        highlight={"libra ↑": "higher", "capability ↑": "higher", "safety ↑": "higher"},
    )
    runs = Table(
        "runs", ["model", "run folders"], [[m["model"], ", ".join(m["runs"])] for m in board["models"]]
    )
    text = (
        f"Capability x: mean of {', '.join(board['capability'])} ({board['normalisation']} normalisation). "
        f"Safety y: mean of {', '.join(board['safety'])}. The Libra score is one minus the RMS distance to "
        "(1, 1): unlike the mean it penalises a model that buys one at the cost of the other."
    )
    plots = Path(tempfile.mkdtemp(prefix=".plots-", dir=out))
    try:
        figure = Figure("capability against safety", plot_leaderboard(plots / "libra.png", board))
        sections = [Section("Libra leaderboard", text, tables=[table, runs], figures=[figure])]
        write_report(out / "report.html", "Libra leaderboard", sections)
    finally:
        shutil.rmtree(plots, ignore_errors=True)


def leaderboard_command(
    run_args: Sequence[str],
    *,
    capability: Sequence[str],
    safety: Sequence[str],
    normalisation: Normalisation = "none",
    out: str = "runs/leaderboard",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build, print, and write leaderboard.json + report.html to ``out`` (never over files unless
    ``overwrite``)."""
    from alignkit.runs import RunFolderError, prepare_run_dir, release_run_lock
    from alignkit.sections import check_output_dir

    check_output_dir(out, "--out")
    if Path(out).is_dir() and any(Path(out).iterdir()) and not overwrite:
        raise RunFolderError(
            f"--out {out!r} already holds files; pass --overwrite to replace them or choose another folder"
        )
    board = build_leaderboard(run_args, capability, safety, normalisation)
    print(format_leaderboard(board))
    if board["unused_runs"]:
        print(
            f"alignkit: warning: no metric was read from {', '.join(board['unused_runs'])}", file=sys.stderr
        )
    folder = prepare_run_dir(out, overwrite=overwrite, resume=False)
    try:
        write_leaderboard(folder, board)
    finally:
        release_run_lock(folder)
    print(f"leaderboard: {folder / 'leaderboard.json'}; report: {folder / 'report.html'}")
    return board
