"""Sources: files of every supported format, split discovery in folders, skipping, and the hub path."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from alignkit.data import DataError, load_records
from alignkit.data.sources import split_files

ROWS = [
    {"question": "What is 2+2?", "answer": "5", "correction": "4"},
    {"question": "Capital of Peru?", "answer": "Quito", "correction": "Lima"},
]


def png_bytes(color=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def corrections(result):
    return [(r.question, r.correction, r.origin.row) for r in result.records]


def test_parquet_csv_json_and_jsonl_read_the_same_records(tmp_path):
    expected = [("What is 2+2?", "4", 1), ("Capital of Peru?", "Lima", 2)]
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    (tmp_path / "a.csv").write_text(
        "question,answer,correction\nWhat is 2+2?,5,4\nCapital of Peru?,Quito,Lima\n"
    )
    for name in ("a.parquet", "a.json", "a.jsonl"):
        assert corrections(load_records(tmp_path / name, "aligner")) == expected, name
    assert corrections(load_records(tmp_path / "a.csv", "aligner")) == [
        (q, c, row + 1) for q, c, row in expected
    ]


def test_json_file_holding_json_lines_is_read_line_by_line(tmp_path):
    path = write_jsonl(tmp_path / "train.json", ROWS)  # datasets' to_json writes lines into .json files
    assert [r.origin.row for r in load_records(path, "aligner").records] == [1, 2]


def test_jsonl_row_numbers_are_file_lines_even_with_blank_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert [r.origin.row for r in load_records(path, "aligner").records] == [1, 3]


def test_folder_discovery_picks_the_split_files(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS[:1])
    write_jsonl(tmp_path / "test.jsonl", ROWS[1:])
    write_jsonl(tmp_path / ".cache" / "train.jsonl", ROWS)  # hidden folders are ignored
    assert corrections(load_records(tmp_path, "aligner", split="test")) == [("Capital of Peru?", "Lima", 1)]
    assert corrections(load_records(tmp_path, "aligner")) == [("What is 2+2?", "4", 1)]


def test_folder_discovery_reads_hub_style_shards_and_split_folders(tmp_path):
    pq.write_table(
        pa.Table.from_pylist(ROWS[:1]),
        (tmp_path / "data").mkdir() or tmp_path / "data" / "train-00000-of-00002.parquet",
    )
    pq.write_table(pa.Table.from_pylist(ROWS[1:]), tmp_path / "data" / "train-00001-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "data" / "train_prefs-00000-of-00001.parquet")
    write_jsonl(tmp_path / "validation" / "part.jsonl", ROWS)
    assert [p.name for p in split_files(tmp_path, "train")] == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    assert [p.name for p in split_files(tmp_path, "train_prefs")] == ["train_prefs-00000-of-00001.parquet"]
    assert [p.name for p in split_files(tmp_path, "validation")] == ["part.jsonl"]
    result = load_records(tmp_path, "aligner")
    assert [(r.correction, r.origin.file.endswith("00001-of-00002.parquet")) for r in result.records] == [
        ("4", False),
        ("Lima", True),
    ]


def test_folder_without_the_split_lists_what_it_found(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(
        DataError, match=r"expected data files for split 'eval' .*, got test\.jsonl, train\.jsonl"
    ):
        load_records(tmp_path, "aligner", split="eval")


def test_single_file_folder_serves_as_train(tmp_path):
    write_jsonl(tmp_path / "corrections.jsonl", ROWS)
    assert len(load_records(tmp_path, "aligner").records) == 2


def test_missing_local_path_is_an_error_not_a_hub_lookup(tmp_path):
    with pytest.raises(DataError, match="expected an existing file or folder, got nothing at that path"):
        load_records(str(tmp_path / "nope.jsonl"), "aligner")


def test_skip_invalid_counts_and_explains_skipped_rows(tmp_path):
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            ROWS[0],
            {"question": "q", "answer": "a"},
            {"question": "q", "answer": 3, "correction": "c"},
            ROWS[1],
        ]
        + [{"question": "q", "answer": "a"}],
    )
    with path.open("a") as handle:
        handle.write("{not json\n")
    result = load_records(path, "aligner", skip_invalid=True)
    assert [r.correction for r in result.records] == ["4", "Lima"]
    assert result.rows_read == 6
    assert [(s.row, s.field) for s in result.skipped] == [
        (2, "correction"),
        (3, "answer"),
        (5, "correction"),
        (6, None),
    ]
    assert result.skipped[1].reason == "expected a non-empty string" and result.skipped[1].detail == "got 3"
    assert result.skip_summary() == {
        "field 'correction': expected a non-empty string": 2,
        "field 'answer': expected a non-empty string": 1,
        "expected a JSON object": 1,
    }
    text = result.format_skipped()
    assert text.splitlines()[0] == "skipped 4 of 6 rows:"
    assert "     2  field 'correction': expected a non-empty string" in text
    assert f"e.g. {path} row 3: field 'answer': expected a non-empty string, got 3" in text
    assert result.skipped[0].to_dict()["row"] == 2


def test_parquet_images_as_bytes_structs_stay_loadable(tmp_path):
    row = {
        "question": "What color is this?",
        "image": {"bytes": png_bytes((0, 0, 255)), "path": "blue.png"},
        "response_1": "Blue.",
        "response_2": "Red.",
        "overall_response": 1,
    }
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "train.parquet")
    (record,) = load_records(tmp_path, "align-anything-ti2t").records
    image = record.prompt[0].media()[0]
    assert image.path is None and image.open_image().getpixel((0, 0)) == (0, 0, 255)


def test_hub_datasets_go_through_load_dataset_with_decoded_images(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, subset, split):
        calls.append((name, subset, split))
        pixel = Image.new("RGB", (2, 2), (0, 255, 0))
        return [
            {
                "question": "What is shown?",
                "image": pixel,
                "category": "animal_abuse",
                "image_severity": 1,
                "response": "A green square.",
                "is_response_safe": "True",
            }
        ]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    (record,) = load_records(
        "PKU-Alignment/BeaverTails-V", "beavertails-v", split="evaluation", subset="animal_abuse"
    ).records
    assert calls == [("PKU-Alignment/BeaverTails-V", "animal_abuse", "evaluation")]
    assert str(record.origin) == "PKU-Alignment/BeaverTails-V/animal_abuse[evaluation] row 1"
    assert record.response.is_safe is True
    assert record.prompt[0].media()[0].open_image().getpixel((1, 1)) == (0, 255, 0)
