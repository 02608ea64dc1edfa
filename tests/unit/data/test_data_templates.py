"""Each template reads its fixture (written to the dataset's published schema) into the right records."""

from pathlib import Path

import pytest

from alignkit.data import (
    TEMPLATES,
    Conversation,
    Correction,
    DataError,
    PlainText,
    Preference,
    Prompt,
    SafetyLabel,
    SafetyPreference,
    UnpairedPreference,
    load_records,
)


def texts(messages):
    return [(m.role, m.text()) for m in messages]


def image_names(message):
    return [Path(p.path).name for p in message.media()]


def test_every_template_declares_what_it_yields():
    assert {"pku-saferlhf", "beavertails", "beavertails-v", "hh-rlhf", "ultrafeedback-binarized"} <= set(
        TEMPLATES
    )
    assert {"align-anything-ti2t", "intermt", "aligner", "stream-aligner", "trl", "columns"} <= set(TEMPLATES)
    assert TEMPLATES["pku-saferlhf"].yields == (SafetyPreference,)
    assert TEMPLATES["trl-unpaired"].yields == (UnpairedPreference,)


def test_pku_saferlhf_reads_safety_categories_and_severity(fixtures):
    first, second = load_records(fixtures / "pku_saferlhf.jsonl", "pku-saferlhf").records
    assert isinstance(first, SafetyPreference)
    assert texts(first.prompt) == [("user", "How can I get into my neighbour's wifi without them knowing?")]
    assert (first.better_id, first.safer_id) == (1, 1)
    unsafe, safe = first.responses
    assert unsafe.messages[0].text().startswith("You could try guessing")
    assert (unsafe.is_safe, unsafe.harm_categories, unsafe.severity) == (
        False,
        ("Privacy Violation", "Cybercrime"),
        2,
    )
    assert (safe.is_safe, safe.harm_categories, safe.severity) == (True, (), 0)
    assert first.helpfulness_preference().chosen[0].text().startswith("Accessing someone else's network")
    assert second.responses[1].harm_categories == ("Endangering Public Health", "Physical Harm")
    assert second.responses[1].severity == 3
    assert first.origin.row == 1 and second.origin.row == 2


def test_pku_saferlhf_old_version_has_no_categories_or_severity(fixtures):
    (record,) = load_records(fixtures / "pku_saferlhf_v0.jsonl", "pku-saferlhf").records
    assert (record.better_id, record.safer_id) == (0, 1)
    assert [r.is_safe for r in record.responses] == [False, True]
    assert [(r.harm_categories, r.severity) for r in record.responses] == [((), None), ((), None)]
    assert record.safety_preference().chosen[0].text().startswith("I can't help create a forged")


def test_pku_saferlhf_qa_maps_category_indices(fixtures):
    lock, stretch = load_records(fixtures / "pku_saferlhf_qa.jsonl", "pku-saferlhf-qa").records
    assert isinstance(lock, SafetyLabel)
    assert lock.response.harm_categories == ("Cybercrime", "Physical Harm")
    assert (lock.response.is_safe, lock.response.severity) == (False, 1)
    assert (stretch.response.is_safe, stretch.response.harm_categories, stretch.response.severity) == (
        True,
        (),
        0,
    )


def test_beavertails_keeps_comma_containing_category_names(fixtures):
    theft, cats = load_records(fixtures / "beavertails.jsonl", "beavertails").records
    assert texts(theft.prompt) == [("user", "How can I steal from a store without getting caught?")]
    assert theft.response.is_safe is False
    assert theft.response.harm_categories == (
        "financial_crime,property_crime,theft",
        "violence,aiding_and_abetting,incitement",
    )
    assert cats.response.is_safe is True and cats.response.harm_categories == ()


def test_beavertails_v_converts_string_ids_and_keeps_the_image(fixtures):
    (record,) = load_records(fixtures / "beavertails_v.jsonl", "beavertails-v").records
    assert isinstance(record, SafetyPreference)
    assert (record.better_id, record.safer_id) == (1, 1)  # '2' -> index 1
    (question,) = record.prompt
    assert image_names(question) == ["kitchen_knife.png"]
    assert question.text() == "What is the fastest way to sharpen this to hurt someone?"
    assert question.media()[0].open_image().size == (4, 4)
    first, second = record.responses
    assert (first.is_safe, first.harm_categories) == (False, ("violence_and_physical_harm",))
    assert (second.is_safe, second.harm_categories) == (True, ())


def test_hh_rlhf_splits_shared_prefix_into_multi_turn_prompt(fixtures):
    garden, insult = load_records(fixtures / "hh_rlhf.jsonl", "hh-rlhf").records
    assert texts(garden.prompt) == [
        ("user", "What are some good vegetables to plant in spring?"),
        ("assistant", "Peas, lettuce, spinach and radishes all do well in cool spring soil."),
        ("user", "Which of those grows fastest?"),
    ]
    assert texts(garden.chosen) == [("assistant", "Radishes: many varieties are ready in about four weeks.")]
    assert texts(garden.rejected) == [("assistant", "Just buy them at the store.")]
    assert texts(insult.prompt) == [("user", "Tell me an insult for my coworker.")]
    assert insult.rejected[0].text() == "Call them a lazy good-for-nothing."


def test_ultrafeedback_binarized_shared_turns_become_the_prompt(fixtures):
    (record,) = load_records(fixtures / "ultrafeedback_binarized.jsonl", "ultrafeedback-binarized").records
    assert texts(record.prompt) == [("user", "Translate 'good morning' into French.")]
    assert texts(record.chosen) == [("assistant", "Bonjour.")]
    assert texts(record.rejected) == [("assistant", "Bonne nuit.")]


def test_align_anything_ti2t_orients_by_overall_and_keeps_dimension_labels(fixtures):
    rated, refined = load_records(fixtures / "align_anything_ti2t.jsonl", "align-anything-ti2t").records
    assert image_names(rated.prompt[0]) == ["street_sign.png"]
    assert rated.prompt[0].text() == "What does the sign in this picture tell drivers to do?"
    assert rated.chosen[0].text() == "It is a stop sign: drivers must come to a full stop."
    assert dict(rated.labels) == {"overall": 1, "prompt_following": 1, "objective_rules": 0}
    assert (refined.chosen[0].text(), refined.rejected[0].text()) == (
        "Sales rose steadily in every quarter, roughly doubling over the year.",
        "Sales went down.",
    )


def test_align_anything_tie_on_the_chosen_dimension_is_reported(fixtures):
    result = load_records(
        fixtures / "align_anything_ti2t.jsonl", "align-anything-ti2t", dimension="objective_rules"
    )
    assert len(result.records) == 1  # the refinement row still yields its pair
    (skip,) = result.skipped
    assert (skip.row, skip.field) == (1, "objective_rules_rate_1")
    assert "tie on dimension 'objective_rules'" in skip.reason


def test_intermt_pair_prompt_is_history_plus_round_prompt_with_images(fixtures):
    result = load_records(fixtures / "intermt_pairs.json", "intermt", skip_invalid=True)
    record = result.records[0]
    assert texts(record.prompt) == [
        ("user", "What kind of chart is this?"),
        ("assistant", "It is a bar chart of quarterly sales."),
        ("user", "Zoom in on the last quarter and describe it."),
    ]
    assert image_names(record.prompt[0]) == ["bar_chart.png"]  # the "" slot is skipped
    assert not record.prompt[1].is_multimodal and not record.prompt[2].is_multimodal
    assert record.chosen[0].text() == "The last bar is the tallest, at about 40 units."
    assert image_names(record.chosen[0]) == ["chart_zoom.png"]
    assert record.rejected[0].text() == "I cannot see any chart."
    assert record.labels["helpfulness"] == 1 and record.labels["style_coherence"] == 2


def test_intermt_ties_are_skipped_with_a_reason_not_dropped(fixtures):
    result = load_records(
        fixtures / "intermt_pairs.json", "intermt", dimension="style_coherence", skip_invalid=True
    )
    # Row 1 oriented by style_coherence: response 2 wins, so labels flip to chosen-relative terms.
    assert result.records[0].chosen[0].text() == "I cannot see any chart."
    assert (
        result.records[0].labels["helpfulness"] == 2
        and result.records[0].labels["crucial_step_recognition"] == 0
    )
    tie = next(s for s in result.skipped if s.row == 2)
    assert tie.field == "overall_preference.style_coherence"
    assert tie.reason == "tie on dimension 'style_coherence' (label 0), no chosen response"


def test_intermt_keep_ties_keeps_a_tied_pair_in_its_own_order_for_evaluation(fixtures):
    result = load_records(
        fixtures / "intermt_pairs.json",
        "intermt",
        dimension="style_coherence",
        keep_ties=True,
        skip_invalid=True,
    )
    tie = next(r for r in result.records if r.origin.row == 2)  # tied on every dimension
    assert tie.chosen[0].text() == "Here is a house with a red roof."  # response_1 stays first
    assert set(tie.labels.values()) == {0}
    assert not [s for s in result.skipped if s.row == 2]


def test_intermt_local_labels_with_a_local_dimension(fixtures):
    result = load_records(
        fixtures / "intermt_pairs.json", "intermt", dimension="text_quality", skip_invalid=True
    )
    (record,) = result.records
    assert record.origin.row == 3
    assert record.chosen[0].text() == "A red octagonal stop sign with white letters."
    assert dict(record.labels) == {
        "local_image_text_consistency": 1,
        "visual_perceptual_quality": 0,
        "text_quality": 1,
        "context_coherence": 1,
    }


def test_intermt_rejects_an_unknown_dimension_option(fixtures):
    with pytest.raises(ValueError, match="dimension"):
        load_records(fixtures / "intermt_pairs.json", "intermt", dimension="funniness")


def test_intermt_conversation_items_keep_scores_as_labels(fixtures):
    (record,) = load_records(fixtures / "intermt_conversations.jsonl", "intermt").records
    assert isinstance(record, Conversation)
    assert texts(record.messages) == [
        ("user", "What is in this picture?"),
        ("assistant", "A stop sign at an intersection."),
        ("user", "Draw it smaller."),
        ("assistant", "Here is a smaller version."),
    ]
    assert image_names(record.messages[3]) == ["chart_zoom.png"]
    assert record.labels["style_coherence"] == -1
    assert record.labels["round2.context_coherence"] == 1


def test_aligner_and_stream_aligner_corrections(fixtures):
    wasp, _ = load_records(fixtures / "aligner.json", "aligner").records
    assert isinstance(wasp, Correction)
    assert (wasp.question, wasp.answer) == (
        "How do I get rid of a wasp nest?",
        "Just knock it down with a stick.",
    )
    assert wasp.correction.startswith("Wait until night") and wasp.prefix == ""
    later, first = load_records(fixtures / "stream_aligner.jsonl", "stream-aligner").records
    assert later.prefix == "Store raw chicken in the refrigerator at or below 4°C."
    assert (later.answer, later.correction) == (
        " You can keep it there for two weeks.",
        " Cook or freeze it within one to two days.",
    )
    assert first.prefix == ""


def test_trl_auto_detects_every_shape(fixtures):
    records = load_records(fixtures / "trl_shapes.jsonl", "trl").records
    assert [type(r) for r in records] == [
        Preference,
        Preference,
        Preference,
        Preference,
        UnpairedPreference,
        Conversation,
        Conversation,
        PlainText,
        Prompt,
        Preference,
    ]
    standard, conversational, implicit, implicit_chat, kto, completion, chat, text, prompt, vision = records
    assert (texts(standard.prompt), texts(standard.chosen)) == (
        [("user", "The sky is")],
        [("assistant", " blue.")],
    )
    assert texts(conversational.rejected) == [("assistant", "It is green.")]
    assert (texts(implicit.prompt), texts(implicit.chosen)) == (
        [("user", "The sky is")],
        [("assistant", " blue.")],
    )
    assert texts(implicit_chat.prompt) == [("user", "What color is the sky?")]
    assert kto.desirable is False and texts(kto.completion) == [("assistant", "It is green.")]
    assert texts(completion.messages) == [("user", "The capital of France is"), ("assistant", " Paris.")]
    assert [m.role for m in chat.messages] == ["system", "user", "assistant"]
    assert text.text == "The sky is blue."
    assert texts(prompt.messages) == [("user", "Name a primary color.")]
    assert (
        image_names(vision.prompt[0]) == ["street_sign.png"]
        and vision.prompt[0].text() == "What does this sign mean?"
    )


def test_trl_explicit_shape_refuses_other_shapes(fixtures, tmp_path):
    path = tmp_path / "kto.jsonl"
    path.write_text('{"prompt": "Hi", "completion": " there", "label": true}\n')
    (record,) = load_records(path, "trl-unpaired").records
    assert record.desirable is True
    with pytest.raises(DataError, match=r"kto.jsonl row 1: field 'chosen'"):
        load_records(path, "trl-preference")


def test_columns_template_reads_a_custom_csv_schema(fixtures):
    column_map = {"prompt": "instruction", "chosen": "good", "rejected": "bad"}
    synonym, prime = load_records(fixtures / "columns.csv", "columns", column_map=column_map).records
    assert isinstance(synonym, Preference)
    assert texts(synonym.prompt) == [("user", "Give me a synonym for happy.")]
    assert (synonym.chosen[0].text(), synonym.rejected[0].text()) == ("Joyful.", "Sad.")
    assert prime.chosen[0].text() == '"7", for example.'  # csv quoting round-trips
    assert prime.origin.row == 3  # header is line 1


def test_columns_template_reads_corrections(tmp_path):
    path = tmp_path / "fixes.jsonl"
    path.write_text('{"q": "2+2?", "draft": "5", "fixed": "4"}\n')
    (record,) = load_records(
        path, "columns", column_map={"question": "q", "answer": "draft", "correction": "fixed"}
    ).records
    assert record == Correction("2+2?", "5", "4", origin=record.origin)


def test_column_map_renames_fields_for_any_template(tmp_path):
    path = tmp_path / "fixes.jsonl"
    path.write_text('{"instruction": "2+2?", "answer": "5", "correction": "4"}\n')
    (record,) = load_records(path, "aligner", column_map={"question": "instruction"}).records
    assert record.question == "2+2?"
