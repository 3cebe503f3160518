"""The WGS84 → metric transformer remembered between processes moves points exactly as PROJ's own choice."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyproj
import pytest

from layers.crs.pipelines import FILE_NAME, transformer_from_wgs84

GK_120E = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E, the demo city's metric CRS


def points_in_the_zone(count: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4549)
    return rng.uniform(118.6, 121.4, count), rng.uniform(20.0, 45.0, count)


def moved(transformer: pyproj.Transformer) -> np.ndarray:
    return np.column_stack(transformer.transform(*points_in_the_zone()))


def chosen_by_proj() -> np.ndarray:
    return moved(pyproj.Transformer.from_crs(4326, GK_120E, always_xy=True))


def test_the_second_process_rebuilds_the_pipeline_without_choosing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first = transformer_from_wgs84(GK_120E, tmp_path)
    assert (tmp_path / FILE_NAME).exists()
    expected = chosen_by_proj()
    assert np.array_equal(moved(first), expected)

    def no_search(*args, **kwargs):
        raise AssertionError("PROJ's operation search ran although the pipeline was remembered")

    monkeypatch.setattr(pyproj.Transformer, "from_crs", no_search)
    second = transformer_from_wgs84(GK_120E, tmp_path)
    assert np.array_equal(moved(second), expected)


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: "not json {",
        lambda entry: {
            "definition": entry["definition"].replace("lon_0=120", "lon_0=117"),
            **{k: v for k, v in entry.items() if k != "definition"},
        },
        lambda entry: {**entry, "x": [x + 1e-6 for x in entry["x"]]},
        lambda entry: {"definition": entry["definition"]},
    ],
    ids=["unreadable file", "another projection", "altered probes", "no probes"],
)
def test_a_damaged_entry_is_chosen_again_and_rewritten(tmp_path: Path, damage):
    transformer_from_wgs84(GK_120E, tmp_path)
    path = tmp_path / FILE_NAME
    ((key, entry),) = json.loads(path.read_text()).items()
    broken = damage(entry)
    path.write_text(broken if isinstance(broken, str) else json.dumps({key: broken}))

    rebuilt = transformer_from_wgs84(GK_120E, tmp_path)
    assert np.array_equal(moved(rebuilt), chosen_by_proj())
    assert json.loads(path.read_text()) == {key: entry}


def test_an_entry_of_another_proj_is_not_used(tmp_path: Path):
    transformer_from_wgs84(GK_120E, tmp_path)
    path = tmp_path / FILE_NAME
    ((key, entry),) = json.loads(path.read_text()).items()
    foreign = key.replace(f"PROJ {pyproj.proj_version_str}", "PROJ 0.0.1")
    wrong = {**entry, "definition": entry["definition"].replace("lon_0=120", "lon_0=117")}
    path.write_text(json.dumps({foreign: wrong}))

    assert np.array_equal(moved(transformer_from_wgs84(GK_120E, tmp_path)), chosen_by_proj())
    assert set(json.loads(path.read_text())) == {foreign, key}


def test_an_unwritable_directory_still_gives_the_transformer(tmp_path: Path):
    blocked = tmp_path / "a file"
    blocked.write_text("")
    assert np.array_equal(moved(transformer_from_wgs84(GK_120E, blocked / "cache")), chosen_by_proj())


@pytest.mark.parametrize("remembered", [True, False], ids=["with a directory", "without one"])
def test_the_transformer_is_the_pipeline_so_other_threads_need_no_search(tmp_path: Path, remembered: bool):
    """Handed out rebuilt from PROJ's pipeline, with or without a directory to remember it in.

    pyproj copies a transformer into each thread that uses it; a copy of one made by ``from_crs``
    searches PROJ's database again (0.06 s), a copy of a pipeline does not. A pipeline-made
    transformer is the one without a source CRS.
    """
    made = transformer_from_wgs84(GK_120E, tmp_path if remembered else None)
    assert made.source_crs is None and "proj=tmerc" in made.definition
    with ThreadPoolExecutor(max_workers=1) as elsewhere:
        assert np.array_equal(elsewhere.submit(moved, made).result(), chosen_by_proj())
    assert (tmp_path / FILE_NAME).exists() == remembered
