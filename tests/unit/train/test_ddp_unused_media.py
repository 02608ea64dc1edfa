"""``allow_unused_media_parameters``: DDP's ``find_unused_parameters`` for multimodal models in a
multi-process run only (the 2-process behaviour itself: ``tests/integration/test_vlm_ddp.py``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from alignkit.train.common import allow_unused_media_parameters


def accelerator(processes: int, handler: object = None) -> SimpleNamespace:
    return SimpleNamespace(num_processes=processes, ddp_handler=handler)


@pytest.mark.parametrize("key", ["vision_config", "audio_config"])
def test_a_multimodal_model_on_two_processes_lets_ddp_find_unused_parameters(key: str):
    acc = accelerator(2)
    model = SimpleNamespace(config=SimpleNamespace(**{key: object()}))
    assert allow_unused_media_parameters(acc, model)
    assert acc.ddp_handler.to_kwargs() == {"find_unused_parameters": True}


def test_text_models_one_process_and_a_launch_time_handler_are_left_alone():
    text = SimpleNamespace(config=SimpleNamespace(vision_config=None))
    vlm = SimpleNamespace(config=SimpleNamespace(vision_config=object()))
    for acc, model in ((accelerator(2), text), (accelerator(1), vlm)):
        assert not allow_unused_media_parameters(acc, model) and acc.ddp_handler is None
    mine = object()
    acc = accelerator(2, mine)
    assert not allow_unused_media_parameters(acc, vlm) and acc.ddp_handler is mine
