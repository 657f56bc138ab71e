"""Shared test fixtures: runs happen in a temporary working directory (RecBole writes log/ and
saved/ to the cwd) with a temporary data folder; real data under ../shared/datasets is optional."""
import os
from pathlib import Path

import pytest

from recbole_spectral.data.converters.mmrec import convert
from tests.helpers import ROOT, write_mmrec

SHARED_DATASETS = Path(os.environ.get("RECBOLE_SPECTRAL_SHARED", ROOT.parent / "shared" / "datasets"))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh cwd (for log/ and saved/) and data folder; shipped on-demand datasets are built there."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "dataset_atomic"
    data.mkdir()
    monkeypatch.setenv("RECBOLE_SPECTRAL_DATA", str(data))
    return tmp_path


@pytest.fixture(scope="session")
def shared_datasets():
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real benchmark data not present at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture
def toy(workdir):
    """The toy MMRec folder converted into the test's data folder; returns (atomic folder, source rows)."""
    source = write_mmrec(workdir / "mmrec" / "toy")
    convert(str(workdir / "mmrec" / "toy"), "toy", log=lambda line: None)
    return workdir / "dataset_atomic" / "toy", source
