"""build_registry: every tool, in planner order, with data loaded once per process."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from airlock.errors import InputDataError
from airlock.registry import SideEffect
from tools import build_registry, close_crm_connections, load_firmographics, load_taxonomy

ORDER = [
    "extract_domain", "check_email", "normalize_country", "normalize_phone", "lookup_firmographics",
    "classify_industry", "guess_industry_from_name", "band_employees", "crm_update_accounts",
    "tickets_open",
]


def test_order_and_producers(tmp_path: Path, project_dir: Path) -> None:
    registry = build_registry(project_dir, f"sqlite:///{tmp_path / 'crm.db'}")
    assert [spec.name for spec in registry] == ORDER
    assert [s.name for s in registry.producers_of("industry")] == ["classify_industry", "guess_industry_from_name"]
    for field in ("domain", "country_code", "phone_e164", "email_status", "employee_band"):
        assert len(registry.producers_of(field)) == 1, field
    effects = {spec.name: spec.effect for spec in registry}
    assert effects["lookup_firmographics"] is SideEffect.READ
    assert effects["crm_update_accounts"] is SideEffect.WRITE
    assert effects["tickets_open"] is SideEffect.WRITE
    pure = [name for name in ORDER if name not in ("lookup_firmographics", "crm_update_accounts", "tickets_open")]
    assert all(effects[name] is SideEffect.NONE for name in pure)
    assert not (tmp_path / "crm.db").exists()  # building a registry does not touch the CRM


def test_catalog_and_hashes_are_stable(tmp_path: Path, project_dir: Path) -> None:
    first = build_registry(project_dir, f"sqlite:///{tmp_path / 'crm.db'}")
    second = build_registry(project_dir, f"sqlite:///{tmp_path / 'crm.db'}")
    assert first.spec_hashes() == second.spec_hashes()
    assert len(set(first.spec_hashes().values())) == len(ORDER)
    for entry in first.catalog():
        assert entry["description"] and entry["input_schema"]["additionalProperties"] is False


def test_data_is_loaded_once_per_file_version(tmp_path: Path, data_dir: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(data_dir, project / "data", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    data = project / "data"
    index = load_firmographics(data)
    assert load_firmographics(data) is index and load_taxonomy(data) is load_taxonomy(data)
    build_registry(project, "sqlite:///:memory:")
    assert load_firmographics(data) is index  # building a registry reuses what was loaded
    reference = data / "reference_firmographics.csv"
    reference.write_text(reference.read_text(encoding="utf-8") + "Extra Co,extra.de,DE,Retail,5\n", encoding="utf-8")
    os.utime(reference, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    reloaded = load_firmographics(data)
    assert reloaded is not index and len(reloaded) == len(index) + 1


def test_registries_share_one_crm_per_url(tmp_path: Path, project_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    first = build_registry(project_dir, url)["crm_update_accounts"]
    second = build_registry(project_dir, url)["crm_update_accounts"]
    shared = [cell.cell_contents for cell in first.fn.__closure__ or ()]
    assert shared and shared == [cell.cell_contents for cell in second.fn.__closure__ or ()]
    close_crm_connections()
    third = build_registry(project_dir, url)["crm_update_accounts"]
    assert [cell.cell_contents for cell in third.fn.__closure__ or ()] != shared


def _own_reference(folder: Path, data_dir: Path) -> Path:
    """A reference-data folder of its own: the shipped taxonomy and one company."""
    folder.mkdir()
    shutil.copy(data_dir / "taxonomy.csv", folder / "taxonomy.csv")
    (folder / "reference_firmographics.csv").write_text(
        "name,domain,country_code,industry,employees\nZzyzx Widgets GmbH,zzyzx-widgets.de,DE,Retail,42\n",
        encoding="utf-8")
    return folder


def test_reference_data_from_another_folder(tmp_path: Path, project_dir: Path, data_dir: Path) -> None:
    own = _own_reference(tmp_path / "reference", data_dir)
    lookup = {"name": "Zzyzx Widgets", "domain": "zzyzx-widgets.de", "country_code": "DE"}
    shipped = build_registry(project_dir, "sqlite:///:memory:")["lookup_firmographics"]
    assert shipped.call(lookup).matched_name is None
    mine = build_registry(project_dir, "sqlite:///:memory:", data_dir=own)["lookup_firmographics"]
    assert mine.call(lookup).matched_name == "Zzyzx Widgets GmbH"


def test_airlock_data_dir_reaches_the_runs_registry(airlock_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, data_dir: Path) -> None:
    from airlock.settings import Settings
    from tasks.resources import resources

    assert Settings().reference_dir == Settings().project_dir / "data"
    own = _own_reference(tmp_path / "reference", data_dir)
    monkeypatch.setenv("AIRLOCK_DATA_DIR", str(own))
    assert Settings().reference_dir == own
    lookup = resources().registry["lookup_firmographics"]
    assert lookup.call({"domain": "zzyzx-widgets.de"}).matched_name == "Zzyzx Widgets GmbH"


def test_reference_on_first_lookup(tmp_path: Path, project_dir: Path, data_dir: Path) -> None:
    """A run's registry (and a worker's) builds the reference index on the first lookup: the run's
    process looks up only once its chunks' tools run, and its worker processes never do. The file
    and its columns are checked when the registry is built, before a run starts."""
    own = _own_reference(tmp_path / "reference", data_dir)
    (own / "reference_firmographics.csv").write_text("name,domain\nX,x.de\n", encoding="utf-8")
    for lazily in (False, True):  # a missing column is found before any run starts either way
        with pytest.raises(InputDataError, match="lack the column"):
            build_registry(project_dir, "sqlite:///:memory:", data_dir=own, reference_on_first_lookup=lazily)
    (own / "reference_firmographics.csv").unlink()
    with pytest.raises(InputDataError, match="cannot read reference firmographics"):
        build_registry(project_dir, "sqlite:///:memory:", data_dir=own, reference_on_first_lookup=True)
    # A row that cannot be read is found when the index is built: the first lookup fails clearly.
    (own / "reference_firmographics.csv").write_text(
        "name,domain,country_code,industry,employees\nX,x.de,DE,Retail,many\n", encoding="utf-8")
    lookup = build_registry(project_dir, "sqlite:///:memory:", data_dir=own,
                            reference_on_first_lookup=True)["lookup_firmographics"]
    with pytest.raises(InputDataError, match="not a whole number"):
        lookup.call({"domain": "x.de"})
