"""``inspect_dataset``: counts, skipped rows by reason, and a readable sample."""

import json

from alignkit.data import inspect_dataset


def test_inspect_report_counts_skips_and_renders_a_sample(fixtures):
    report = inspect_dataset(fixtures / "pku_saferlhf.jsonl", "pku-saferlhf")
    assert report.counts == {"SafetyPreference": 2} and report.rows_read == 2 and report.skipped == []
    text = report.format()
    assert "template: pku-saferlhf" in text
    assert "     2  SafetyPreference" in text
    assert "skipped 0 of 2 rows" in text
    assert "user: How can I get into my neighbour's wifi without them knowing?" in text
    assert "responses[0] (unsafe, harm categories: Privacy Violation, Cybercrime, severity 2):" in text
    assert "better_id: 1" in text


def test_inspect_collects_bad_rows_and_serialises(fixtures):
    report = inspect_dataset(fixtures / "intermt_pairs.json", "intermt")
    assert report.counts == {"Preference": 1}
    assert len(report.skip_summary()) == 2
    data = report.to_dict()
    json.dumps(data)  # must be JSON-serialisable, images included
    assert data["sample"]["type"] == "Preference"
    assert data["sample"]["chosen"][0]["content"][0] == {
        "type": "image",
        "path": str(fixtures / "images" / "chart_zoom.png"),
    }
    assert data["skipped"][0]["row"] == 2
    assert "[image: " in report.format()
