"""The HTML report: escaped text, embedded PNGs, bold best cells, TOC anchors, atomic writes."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from alignkit.eval.report import (
    PNG_SIGNATURE,
    Figure,
    Section,
    Table,
    draw_line_plot,
    highlight_by_arrows,
    line_plot,
    write_report,
)

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _TagChecker(HTMLParser):
    """Records every tag and fails on a closing tag that does not match the innermost open one."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def _parse(page: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [], f"unclosed tags: {checker.stack}"
    return checker


@pytest.fixture
def curve(tmp_path: Path) -> Path:
    steps = list(range(10))
    return line_plot(
        tmp_path / "plots" / "curves.png",
        {"reward": (steps, [0.1 * s for s in steps]), "cost": (steps, [1.0 - 0.05 * s for s in steps])},
        title="training",
        xlabel="step",
        ylabel="value",
        hline=0.6,
        hline_label="cost limit",
    )


@pytest.fixture
def sections(curve: Path) -> list[Section]:
    # nan first in a highlighted column: a naive max() would start from it and bold nothing.
    table = Table(
        title="policies <script>alert(1)</script>",
        columns=["policy", "accuracy", "cost"],
        rows=[["dpo", float("nan"), 0.4], ["sft", 0.61234, 0.9], ["safe <b>", 0.87, 0.55]],
        note="accuracy on held-out pairs & cost < limit",
        highlight={"accuracy": "higher", "cost": "lower"},
    )
    return [
        Section(
            heading="Summary & scope", text="First paragraph.\n\nSecond <i>paragraph</i>.", tables=[table]
        ),
        Section(heading="Curves", figures=[Figure(title="reward and cost", path=curve, caption="per step")]),
    ]


def _write(tmp_path: Path, sections: list[Section]) -> str:
    out = write_report(
        tmp_path / "out" / "report.html",
        "Eval <script>alert('x')</script>",
        sections,
        subtitle="toy world",
        metadata={"command": "alignkit eval <all>", "elapsed": "3.2 s"},
    )
    assert out == tmp_path / "out" / "report.html"
    return out.read_text(encoding="utf-8")


def test_line_plot_writes_a_png(curve: Path) -> None:
    assert curve.read_bytes().startswith(PNG_SIGNATURE)


def test_line_plot_rejects_mismatched_series(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'reward'"):
        line_plot(tmp_path / "x.png", {"reward": ([1, 2, 3], [1.0, 2.0])}, title="t", xlabel="x", ylabel="y")


def test_report_is_well_formed_and_escaped(tmp_path: Path, sections: list[Section]) -> None:
    page = _write(tmp_path, sections)
    assert page.startswith("<!DOCTYPE html>")
    checker = _parse(page)
    assert {"html", "head", "body", "title", "style", "table", "figure", "img"} <= set(checker.tags)
    assert "script" not in checker.tags
    assert "<script>" not in page and "<b>" not in page and "<i>" not in page
    assert "Eval &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "policies &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "safe &lt;b&gt;" in page
    assert "Summary &amp; scope" in page
    assert "<p>First paragraph.</p>" in page and "<p>Second &lt;i&gt;paragraph&lt;/i&gt;.</p>" in page
    assert "accuracy on held-out pairs &amp; cost &lt; limit" in page
    assert "<dt>command</dt><dd>alignkit eval &lt;all&gt;</dd>" in page
    assert "<dt>elapsed</dt><dd>3.2 s</dd>" in page


def test_toc_links_every_section(tmp_path: Path, sections: list[Section]) -> None:
    checker = _parse(_write(tmp_path, sections))
    toc = [h[1:] for h in checker.hrefs if h.startswith("#")]
    assert len(toc) == 2
    assert len(set(toc)) == 2
    assert set(toc) <= set(checker.ids)


def test_figure_is_embedded_as_base64_png(tmp_path: Path, sections: list[Section]) -> None:
    page = _write(tmp_path, sections)
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(found) == 1
    data = base64.b64decode(found[0], validate=True)
    assert data.startswith(PNG_SIGNATURE)
    assert data == (tmp_path / "plots" / "curves.png").read_bytes()


def _cells(page: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S)
    assert body is not None
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1))]


def test_cells_are_formatted_and_best_is_bold(tmp_path: Path, sections: list[Section]) -> None:
    rows = _cells(_write(tmp_path, sections))
    assert rows == [
        ["dpo", "\u2013", "<strong>0.400</strong>"],
        ["sft", "0.612", "0.900"],
        ["safe &lt;b&gt;", "<strong>0.870</strong>", "0.550"],
    ]


def test_ties_are_all_bold_and_unknown_highlight_is_refused(tmp_path: Path) -> None:
    table = Table(title="t", columns=["a", "b"], rows=[[1, 2.0], [1, 3.0]], highlight={"a": "lower"})
    page = _write(tmp_path, [Section(heading="s", tables=[table])])
    assert _cells(page) == [["<strong>1</strong>", "2.000"], ["<strong>1</strong>", "3.000"]]
    bad = Table(title="t", columns=["a"], rows=[[1]], highlight={"z": "higher"})
    with pytest.raises(ValueError, match="'z'"):
        _write(tmp_path, [Section(heading="s", tables=[bad])])


def test_missing_png_names_file_and_figure(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "gone.png"
    section = Section(heading="s", figures=[Figure(title="lambda over training", path=missing)])
    with pytest.raises(FileNotFoundError) as err:
        write_report(tmp_path / "report.html", "t", [section])
    assert str(missing) in str(err.value)
    assert "lambda over training" in str(err.value)
    assert not (tmp_path / "report.html").exists()


def test_atomic_write_leaves_no_temp_files(tmp_path: Path, sections: list[Section]) -> None:
    _write(tmp_path, sections)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.html"]
    first = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")

    broken = [Section(heading="s", figures=[Figure(title="f", path=tmp_path / "gone.png")])]
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "out" / "report.html", "t", broken)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.html"]
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8") == first


def test_failed_rename_removes_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("previous report")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("alignkit.eval.report.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(target, "t", [Section(heading="s", text="new")])
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert target.read_text() == "previous report"


def test_unranked_rows_never_bold_and_arrows_give_the_direction(tmp_path: Path) -> None:
    columns = ["stage", "accuracy ↑", "compliance ↓", "score"]
    assert highlight_by_arrows(columns) == {"accuracy ↑": "higher", "compliance ↓": "lower"}
    table = Table(
        title="t",
        columns=columns,
        rows=[["random init", 0.9, 0.0, 5.0], ["sft", 0.5, 0.3, 1.0], ["ppo", 0.7, 0.2, 2.0]],
        highlight=highlight_by_arrows(columns),
        unranked={0},
    )
    page = _write(tmp_path, [Section(heading="s", tables=[table])])
    assert _cells(page) == [
        ["random init", "0.900", "0.000", "5.000"],
        ["sft", "0.500", "0.300", "1.000"],
        ["ppo", "<strong>0.700</strong>", "<strong>0.200</strong>", "2.000"],
    ]


def test_demo_policies_table_bolds_the_best_trained_stage_of_every_arrow_column(tmp_path: Path) -> None:
    """The random-init model refuses nothing and complies with nothing (it babbles): it must not win."""
    from alignkit.demo import ORACLE_COLUMNS
    from alignkit.demo_report import policies_table

    def stage(accuracy: float, compliance: float, reward: float, cost: float) -> dict[str, float]:
        values = dict.fromkeys((key for key, _ in ORACLE_COLUMNS), 0.5)
        values.update(
            benign_accuracy=accuracy, harmful_compliance_rate=compliance,
            reward_model_score=reward, cost_model_score=cost,
        )  # fmt: skip
        return values

    oracle = {
        "random init": stage(0.0, 0.0, -9.0, -9.0),
        "SFT": stage(0.6, 0.4, 0.1, 0.3),
        "Safe RLHF": stage(0.7, 0.1, 0.2, -0.5),
    }
    table = policies_table(oracle)
    titles = [title for _, title in ORACLE_COLUMNS]
    assert all(table.highlight.get(t) in ("higher", "lower") for t in titles), table.highlight
    rows = _cells(_write(tmp_path, [Section(heading="s", tables=[table])]))
    column = {t: i + 1 for i, t in enumerate(titles)}
    assert not any("<strong>" in cell for cell in rows[0])  # random init
    for title in ("benign accuracy ↑", "harmful compliance ↓", "reward-model score ↑", "cost-model score ↓"):
        assert rows[2][column[title]].startswith("<strong>"), title
        assert not rows[1][column[title]].startswith("<strong>"), title


def test_line_plot_keeps_a_long_title_and_the_legend_inside_the_figure() -> None:
    """Nothing is clipped when the PNG is saved, and the legend does not sit on the curves."""
    import matplotlib.pyplot as plt

    steps = list(range(30))
    series = {
        name: (steps, [i * s for s in steps]) for i, name in enumerate(["PPO (watched)", "Safe RLHF", "J_C"])
    }
    fig = draw_line_plot(
        series,
        title="GRPO: rule reward (oracle's ideal answer) of the sampled groups, a long title",
        xlabel="step",
        ylabel="cost-model score (< 0 safe)",
        hline=0.0,
        hline_label="cost limit",
    )
    try:
        renderer = fig.canvas.get_renderer()
        fig.canvas.draw()
        page = fig.bbox
        ax = fig.axes[0]
        texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *fig.legends[0].get_texts()]
        for text in texts:
            box = text.get_window_extent(renderer)
            assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, (text.get_text(), box, page)
            assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, (text.get_text(), box, page)
        assert not fig.legends[0].get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    finally:
        plt.close(fig)
