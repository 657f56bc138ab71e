"""The on-disk kNN cache (recbole_spectral.layers.knn) is trusted only for a reason: two processes building
it at once leave one complete file and identical graphs; a cache whose content does not match its key
(edited arrays under the right name, an older format, a damaged file) is rebuilt with a log line."""
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_spectral.layers import knn
from recbole_spectral.layers.knn import features_fingerprint, knn_graph

ROOT = Path(__file__).resolve().parents[1]

# One builder process: waits for the start signal, builds the graph of the shared features (holding the
# result for a moment before writing, so that both processes are past the "is there a cache?" check and
# both write), and saves the graph it returns plus whether it built it.
BUILDER = r"""
import os, sys, time
import numpy as np
from recbole_spectral.layers import knn

cache, out, ready, go = sys.argv[1:5]
built = []
real_edges = knn.knn_edges

def slow_edges(*args, **kwargs):
    edges = real_edges(*args, **kwargs)
    built.append(True)
    time.sleep(1.0)
    return edges

knn.knn_edges = slow_edges
features = np.random.default_rng(7).normal(size=(400, 24)).astype(np.float32)
open(ready, "w").close()
deadline = time.time() + 120
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.01)
graph = knn.knn_graph(features, 6, cache_file=cache).coalesce()
np.savez(out, indices=graph.indices().numpy(), values=graph.values().numpy(), built=bool(built))
"""


def _features():
    return np.random.default_rng(7).normal(size=(400, 24)).astype(np.float32)


def test_two_processes_building_the_same_cache_at_once_leave_one_valid_cache(tmp_path):
    folder = tmp_path / "knn_cache"
    cache = folder / "toy.image.k6.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = []
    for i in range(2):
        argv = [sys.executable, "-c", BUILDER, str(cache), str(tmp_path / f"graph{i}.npz"),
                str(tmp_path / f"ready{i}"), str(tmp_path / "go")]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)
    (tmp_path / "go").touch()  # both start building now
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err

    graphs = [np.load(tmp_path / f"graph{i}.npz") for i in range(2)]
    assert all(bool(g["built"]) for g in graphs)  # both built and wrote: a real race, not a cache hit
    np.testing.assert_array_equal(graphs[0]["indices"], graphs[1]["indices"])
    np.testing.assert_array_equal(graphs[0]["values"], graphs[1]["values"])
    assert sorted(os.listdir(folder)) == [cache.name]  # one cache file, no temporary leftovers

    # the cache left behind is complete, passes its checks, and gives the same graph without a rebuild
    cached = knn._load_cache(str(cache), 400, 6, features_fingerprint(_features()))
    assert cached is not None
    again = knn_graph(_features(), 6, cache_file=str(cache)).coalesce()
    np.testing.assert_array_equal(again.indices().numpy(), graphs[0]["indices"])


@pytest.fixture
def built_cache(tmp_path, monkeypatch):
    features = np.random.default_rng(3).normal(size=(60, 8)).astype(np.float32)
    cache = tmp_path / "cache" / "data.image.k4.npz"
    graph = knn_graph(features, k=4, cache_file=str(cache))
    calls = []
    real_edges = knn.knn_edges
    monkeypatch.setattr(knn, "knn_edges", lambda *a, **kw: calls.append(a[1]) or real_edges(*a, **kw))
    return features, cache, graph, calls


def _rewrite(cache, **changes):
    """Rewrite the cache's arrays under the same name, keeping its key (n, k, fingerprint, checksum)."""
    with np.load(cache, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays.update(changes)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    with open(cache, "wb") as out:
        np.savez(out, **arrays)


def test_an_untouched_cache_is_reused(built_cache):
    features, cache, graph, calls = built_cache
    again = knn_graph(features, k=4, cache_file=str(cache))
    assert calls == [] and torch.equal(again.to_dense(), graph.to_dense())


def _edited_rows(cache):
    with np.load(cache) as stored:
        rows = stored["rows"].copy()
    rows[[0, -1]] = rows[[-1, 0]]  # same key, same shapes and ranges: only the content is wrong
    return rows


def _edited_values(cache):
    with np.load(cache) as stored:
        return stored["values"] * 2


@pytest.mark.parametrize("edit,log", [
    (lambda cache: {"rows": _edited_rows(cache)}, "does not match its checksum (edited or damaged); rebuilding it"),
    (lambda cache: {"values": _edited_values(cache)}, "does not match its checksum (edited or damaged); rebuilding it"),
    (lambda cache: {"cols": np.zeros(5, dtype=np.int32)}, "does not match its checksum (edited or damaged); rebuilding it"),
    (lambda cache: {"checksum": None}, "has no checksum (an older or foreign file); rebuilding it"),
], ids=["rows-edited", "values-edited", "cols-replaced", "no-checksum"])
def test_a_cache_whose_content_does_not_match_its_key_is_rebuilt_with_a_log_line(built_cache, edit, log, caplog):
    features, cache, graph, calls = built_cache
    _rewrite(cache, **edit(cache))
    with caplog.at_level(logging.INFO):
        rebuilt = knn_graph(features, k=4, cache_file=str(cache))
    assert calls == [4]  # never trusted
    assert torch.equal(rebuilt.to_dense(), graph.to_dense())
    assert any(str(cache) in r.getMessage() and log in r.getMessage() for r in caplog.records), caplog.text
    # the rebuilt cache is written back and trusted next time
    knn_graph(features, k=4, cache_file=str(cache))
    assert calls == [4]


@pytest.mark.parametrize("damage", ["truncated", "text", "empty"])
def test_a_damaged_cache_file_is_rebuilt_with_a_log_line(built_cache, damage, caplog):
    features, cache, graph, calls = built_cache
    data = cache.read_bytes()
    cache.write_bytes({"truncated": data[: len(data) // 2], "text": b"not a cache\n", "empty": b""}[damage])
    with caplog.at_level(logging.INFO):
        rebuilt = knn_graph(features, k=4, cache_file=str(cache))
    assert calls == [4] and torch.equal(rebuilt.to_dense(), graph.to_dense())
    assert any("unreadable" in r.getMessage() and "rebuilding it" in r.getMessage() for r in caplog.records), caplog.text


def test_a_cache_of_other_features_or_k_is_rebuilt_with_a_log_line(built_cache, caplog):
    features, cache, graph, calls = built_cache
    with caplog.at_level(logging.INFO):
        knn_graph(features[::-1].copy(), k=4, cache_file=str(cache))
        knn_graph(features, k=5, cache_file=str(cache))
    assert calls == [4, 5]
    assert sum("built from other features or k; rebuilding it" in r.getMessage() for r in caplog.records) == 2
