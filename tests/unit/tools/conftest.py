"""Shared fixtures for the enrichment tool tests: the shipped data, the generator, indexes built once."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tools.firmographics import FirmographicsIndex
from tools.industry import Taxonomy

PROJECT_DIR = Path(__file__).resolve().parents[3]
DATA_DIR = PROJECT_DIR / "data"


def load_generator() -> ModuleType:
    # Loaded by path, the way benchmarks load it: data/ is not a package.
    spec = importlib.util.spec_from_file_location("airlock_data_generate", DATA_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="session")
def reference(generator: ModuleType) -> list[dict[str, str | int]]:
    return generator.generate_reference(7)


@pytest.fixture(scope="session")
def sample(generator: ModuleType, reference: list[dict[str, str | int]]) -> tuple[list[dict[str, str]], dict]:
    """The shipped accounts (seed 7, 2,000 records) with what each one really is."""
    return generator.generate_accounts_with_truth(2000, 7, reference)


@pytest.fixture(scope="session")
def index() -> FirmographicsIndex:
    return FirmographicsIndex.from_csv(DATA_DIR / "reference_firmographics.csv")


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_csv(DATA_DIR / "taxonomy.csv")

