"""Reading training data: nothing dropped silently, options and subsets reach the template, eval != train."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from alignkit.config import ConfigError, from_dict
from alignkit.data import DataError, Message, Preference, load_records
from alignkit.data.pair_examples import tokenize_pairs, tokenize_unpaired
from alignkit.models.loading import load_tokenizer
from alignkit.score.pairs import preference_pairs
from alignkit.sections import DataConfig, DatasetConfig
from alignkit.train import score_training
from alignkit.train.common import NO_RESPONSE_ROOM, DataReport, read_records

TINY = "toyworld://models/tiny"
FIXTURES = Path(__file__).parents[2] / "fixtures" / "data"
MAIN = SimpleNamespace(is_main_process=True, print=print)


def pair(prompt: str, chosen: str = "Yes.", rejected: str = "No.") -> Preference:
    return Preference(
        (Message("user", prompt),), (Message("assistant", chosen),), (Message("assistant", rejected),)
    )


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def records():
    """Two pairs that fit in 32 tokens and one whose prompt alone fills them."""
    return [pair("Say yes."), pair("Say no.", "No.", "Yes."), pair(" ".join(["word"] * 80))]


def test_dpo_pairs_with_no_room_for_a_response_are_counted_as_dropped(tokenizer, records):
    examples, truncated, dropped = tokenize_pairs(records, tokenizer, 32, "helpfulness")
    assert (len(examples), truncated, dropped) == (2, 0, 1)
    unpaired, _, dropped_unpaired = tokenize_unpaired(records, tokenizer, 32, "helpfulness", seed=0)
    assert dropped_unpaired == 2 and len(unpaired) == 4  # the long pair's two completions


def test_score_model_pairs_with_no_room_are_counted_as_dropped(tokenizer, records):
    specs = preference_pairs(records, "test")
    pairs, _, dropped = score_training.tokenize_pairs(specs, tokenizer, 32)
    assert (len(pairs), dropped) == (2, 1)


def test_drops_are_written_and_printed_with_their_reason(tmp_path, capsys):
    report = DataReport(read={"train": 3})
    report.drop("train", 1)
    report.drop("train", 0)  # nothing to report
    report.drop("eval", 2)
    report.publish(MAIN, tmp_path)
    saved = json.loads((tmp_path / "data_report.json").read_text())
    assert saved["dropped"] == {"train": {NO_RESPONSE_ROOM: 1}, "eval": {NO_RESPONSE_ROOM: 2}}
    out = capsys.readouterr().out
    assert f"dropped 1 train examples: {NO_RESPONSE_ROOM}" in out
    assert f"dropped 2 eval examples: {NO_RESPONSE_ROOM}" in out


def test_ties_are_reported_apart_from_invalid_rows(tmp_path):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    worse = [chat[0], {"role": "assistant", "content": "Go away"}]
    row = {"prompt": "Hi", "chosen": chat, "rejected": worse, "score_chosen": 8.0, "score_rejected": 2.0}
    path = write_jsonl(
        tmp_path / "train.jsonl", [row, {**row, "score_rejected": 8.0}, {**row, "chosen": "oops"}]
    )
    ds = DatasetConfig(source=str(path), template="ultrafeedback-binarized")
    report = DataReport()
    assert len(read_records(ds, DataConfig(skip_invalid=True), report, "train")) == 1
    assert [(s["row"], s["kind"]) for s in report.skipped] == [(2, "excluded"), (3, "invalid")]
    summary = report.summary()
    assert "left out 1 rows on purpose" in summary and "tie: score_chosen equals score_rejected" in summary
    assert "skipped 1 invalid rows (data.skip_invalid=true)" in summary
    with pytest.raises(DataError, match="row 3: field 'chosen'"):  # a tie alone is no error, a bad row is
        read_records(ds, DataConfig(), DataReport(), "train")


def test_a_split_with_every_row_left_out_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": ""}, {"text": 3}])
    ds = DatasetConfig(source=str(path), template="trl-text")
    with pytest.raises(
        DataError, match=r"expected at least one train record, got none: all 2 rows were left out"
    ):
        read_records(ds, DataConfig(skip_invalid=True), DataReport(), "train")


def test_eval_equal_to_train_is_warned_about(tmp_path):
    rows = [{"text": f"row {i}"} for i in range(4)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    copy = write_jsonl(tmp_path / "copy.jsonl", rows)  # the same rows in another file still count
    half = write_jsonl(tmp_path / "half.jsonl", rows[:1] + [{"text": "new"}])
    data = DataConfig()
    report = DataReport()
    read_records(DatasetConfig(source=str(train), template="trl-text"), data, report, "train")
    read_records(DatasetConfig(source=str(copy), template="trl-text"), data, report, "eval")
    assert report.warnings == [
        "every one of the 4 eval records is also a training record: eval metrics will measure "
        "memorisation; point data.eval at held-out data"
    ]
    assert "warning: every one of the 4 eval records" in report.summary()
    read_records(DatasetConfig(source=str(half), template="trl-text"), data, report, "eval")
    assert report.warnings[-1].startswith("1 of the 2 eval records are also training records")


def test_template_options_from_the_config_reach_the_template():
    source = str(FIXTURES / "intermt_pairs.json")
    section = {"source": source, "template": "intermt", "options": {"dimension": "style_coherence"}}
    data = from_dict(DataConfig, {"train": section, "skip_invalid": True})
    # read_records would refuse InterMT's images (trainers are text-only); it passes the section's options
    # to load_records exactly like this
    ds = data.train
    (record,) = load_records(ds.source, ds.template, split=ds.split, skip_invalid=True, **ds.options).records
    # row 2 ties, row 3 has no verdict
    # Row 1 prefers response 2 on style_coherence but response 1 on helpfulness (the default dimension):
    # oriented by style_coherence, helpfulness now says "rejected better".
    assert (record.labels["style_coherence"], record.labels["helpfulness"]) == (1, 2)


def test_the_subset_reaches_the_hub_and_its_failure_is_a_data_error():
    ds = DatasetConfig(source="PKU-Alignment/PKU-SafeRLHF", template="pku-saferlhf", subset="alpaca-7b")
    with pytest.raises(DataError) as info:  # tests are offline: the hub cannot be reached
        read_records(ds, DataConfig(), DataReport(), "train")
    assert str(info.value).startswith("PKU-Alignment/PKU-SafeRLHF/alpaca-7b[train]: expected")
    assert "(subset 'alpaca-7b')" in str(info.value)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"template": "pku"},
            "data.train.template='pku' is not a dataset template",
        ),
        (
            {"template": "intermt", "options": {"dimension": "fun"}},
            "data.train.options={'dimension': 'fun'} is not allowed",
        ),
        ({"template": "trl", "options": {"shape": "text"}}, "template 'trl' has no option 'shape'"),
        ({"template": "columns"}, "data.train.column_map={} is not allowed: expected for template 'columns'"),
        ({"template": "trl", "subset": ""}, "data.train.subset='' is not allowed"),
    ],
)
def test_dataset_section_is_checked_with_the_config(section, message):
    with pytest.raises(ConfigError) as info:
        from_dict(DataConfig, {"train": {"source": "data.jsonl", **section}}, prefix="data.")
    assert message in str(info.value)
