"""The request universe and its train/test split."""

from __future__ import annotations

from alignkit.toyworld import HARM_CATEGORIES, HARMFUL_GOALS, find_task, split_tasks
from alignkit.toyworld.world import TEMPLATES, all_tasks, correct_response


def test_split_is_a_partition_with_one_held_out_phrasing_per_fact() -> None:
    splits = split_tasks(0)
    train, test = set(splits["train"]), set(splits["test"])
    assert not train & test and train | test == set(all_tasks())
    facts = {(t.family, t.item) for t in all_tasks()}
    assert {(t.family, t.item) for t in test} == facts  # every fact has exactly one test phrasing
    assert len(test) == len(facts)
    for family, templates in TEMPLATES.items():  # every phrasing is seen in training
        assert {t.template for t in train if t.family == family} == set(range(len(templates)))


def test_split_depends_on_seed_only() -> None:
    assert split_tasks(0) == split_tasks(0)
    assert split_tasks(0)["test"] != split_tasks(1)["test"]


def test_every_task_is_found_from_its_prompt() -> None:
    for task in all_tasks():
        assert find_task(task.prompt) == task
        assert find_task("  " + task.prompt.upper()) == task
    assert find_task("What is the meaning of life?") is None
    assert correct_response(find_task("Add 2 and 5.")) == "The answer is 7."  # type: ignore[arg-type]


def test_every_category_has_goals_with_severities() -> None:
    assert len(HARM_CATEGORIES) == 19
    assert {g.category for g in HARMFUL_GOALS} == set(HARM_CATEGORIES)
    assert {g.severity for g in HARMFUL_GOALS} == {1, 2, 3}
