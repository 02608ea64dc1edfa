"""Shared paths for the data-layer tests."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "data"


@pytest.fixture
def fixtures() -> Path:
    """The folder of small dataset files written to each dataset's published schema."""
    return FIXTURES
