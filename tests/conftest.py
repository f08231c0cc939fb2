"""Shared fixtures: tiny data made by the tests, and the optional ../shared data sets."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CCP_DIR = REPO_ROOT.parent / "shared" / "datasets" / "ccp"


@pytest.fixture
def ccp_dir():
    """The real CCP data set, or a skip with the reason when it is absent."""
    if not (CCP_DIR / "photos").is_dir():
        pytest.skip(f"CCP data set not found at {CCP_DIR} (../shared/datasets/ccp)")
    return CCP_DIR
