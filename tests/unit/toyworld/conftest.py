"""One toy world build shared by the toyworld tests (building takes a few seconds)."""

from __future__ import annotations

import pytest

from alignkit.toyworld import ToyWorld, build


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> ToyWorld:
    return build(tmp_path_factory.mktemp("toyworld") / "world", seed=0)
