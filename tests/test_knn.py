"""Item-item cosine kNN graphs (recbole_spectral.layers.knn): exact small cases, blockwise = brute force,
isolated zero rows, on-disk cache keyed by features and k."""
import numpy as np
import pytest
import torch

from recbole_spectral.layers import knn
from recbole_spectral.layers.knn import knn_graph


def brute_force_knn(features, k):
    """Dense reference: binary top-k cosine graph (self included), D^{-1/2} A D^{-1/2}."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = unit @ unit.T
    adjacency = np.zeros_like(sim)
    for row in range(len(sim)):
        adjacency[row, np.argsort(-sim[row], kind="stable")[:k]] = 1.0
    degree = adjacency.sum(axis=1)
    return adjacency / np.sqrt(degree)[:, None] / np.sqrt(degree)[None, :]


def test_two_clusters_exact_graph():
    # row 0 is RecBole's padding item (zeros); items 1,2 point along x, items 3,4 along y
    features = np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    graph = knn_graph(features, k=2).to_dense().numpy()
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[np.ix_([1, 2], [1, 2])] = 0.5  # each row: itself + its cluster mate, weight 1/sqrt(2*2)
    expected[np.ix_([3, 4], [3, 4])] = 0.5
    np.testing.assert_allclose(graph, expected, atol=1e-7)


def test_tiled_matches_dense_reference():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(53, 8)).astype(np.float32)
    reference = brute_force_knn(features.astype(np.float64), k=5)
    for block_rows in (1, 7, 53, None):
        graph = knn_graph(features, k=5, block_rows=block_rows)
        assert graph.shape == (53, 53) and graph.dtype == torch.float32
        assert graph._nnz() == 53 * 5
        np.testing.assert_allclose(graph.to_dense().numpy(), reference, atol=1e-6)


def test_similarity_is_computed_in_tiles_of_the_upper_triangle(monkeypatch):
    tiles = []
    real_merge = knn._merge_topk

    def spy(best_val, best_idx, start, scores, col_offset):
        tiles.append(tuple(scores.shape))
        return real_merge(best_val, best_idx, start, scores, col_offset)

    monkeypatch.setattr(knn, "_merge_topk", spy)
    features = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    graph = knn_graph(features, k=3, block_rows=6)
    # 4 row blocks (6, 6, 6, 2): 4 diagonal tiles + 6 off-diagonal tiles used both ways = 16 merges
    assert len(tiles) == 16 and max(max(shape) for shape in tiles) == 6  # never 20 x 20
    np.testing.assert_allclose(graph.to_dense().numpy(), brute_force_knn(features.astype(np.float64), 3), atol=1e-6)


def test_zero_rows_are_isolated_and_k_is_clamped():
    features = np.array([[0, 0, 0], [1, 2, 3], [0, 0, 0], [3, 2, 1]], dtype=np.float32)
    graph = knn_graph(features, k=10).to_dense().numpy()
    assert not graph[[0, 2]].any() and not graph[:, [0, 2]].any()
    # two non-zero rows: k is clamped to 2, each links to both with weight 1/2
    np.testing.assert_allclose(graph[np.ix_([1, 3], [1, 3])], np.full((2, 2), 0.5), atol=1e-7)


def test_rows_of_a_normalised_graph_sum_to_one():
    features = np.random.default_rng(2).random((30, 6)).astype(np.float32)
    dense = knn_graph(torch.from_numpy(features), k=4).to_dense()
    np.testing.assert_allclose(dense.sum(dim=1).numpy(), np.ones(30), atol=1e-6)


def test_cache_is_reused_only_for_same_features_and_k(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    features = rng.normal(size=(40, 5)).astype(np.float32)
    cache = tmp_path / "cache" / "data.image.k3.npz"
    first = knn_graph(features, k=3, cache_file=str(cache))
    assert cache.is_file()
    with np.load(cache, allow_pickle=False) as stored:
        assert int(stored["n"]) == 40 and int(stored["k"]) == 3

    calls = []
    real_edges = knn.knn_edges
    monkeypatch.setattr(knn, "knn_edges", lambda *a, **kw: calls.append(a[1]) or real_edges(*a, **kw))
    again = knn_graph(features, k=3, cache_file=str(cache))
    assert calls == []  # served from disk
    assert torch.equal(again.to_dense(), first.to_dense())

    changed = features.copy()
    changed[0] = -changed[0]
    rebuilt = knn_graph(changed, k=3, cache_file=str(cache))
    assert calls == [3]  # other features: rebuilt, not reused
    np.testing.assert_allclose(rebuilt.to_dense().numpy(), brute_force_knn(changed.astype(np.float64), 3), atol=1e-6)
    knn_graph(changed, k=4, cache_file=str(cache))
    assert calls == [3, 4]  # other k: rebuilt


# -- approximate graphs (faiss) -----------------------------------------------------------------------
needs_faiss = pytest.mark.skipif(knn._faiss() is None, reason="faiss-cpu not installed (the 'scale' extra)")


def separated_clusters(n_clusters=20, size=15, dim=16, seed=5):
    """Tight clusters far apart, one zero row first: every row's 10 nearest are its own cluster's rows, by a
    wide margin, so an approximate index has no near-ties to get wrong."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 10
    rows = np.repeat(centres, size, axis=0) + rng.normal(size=(n_clusters * size, dim)) * np.linspace(0.01, 0.5, size)[None].T.repeat(n_clusters, 1).T.reshape(-1, 1)
    return np.vstack([np.zeros((1, dim)), rows]).astype(np.float32)


@needs_faiss
@pytest.mark.parametrize("index", ["HNSW", "IVF"])
def test_approximate_graph_equals_the_exact_one_where_neighbours_are_clear(monkeypatch, caplog, index):
    if index == "IVF":
        monkeypatch.setattr(knn, "HNSW_MAX_ITEMS", 10)
    features = separated_clusters()
    caplog.set_level("INFO")
    graph = knn_graph(features, k=10, method="approximate")
    assert f"items, {index}): recall@10 1.0000 against the exact lists of 300 random rows" in caplog.text
    exact = knn_graph(features, k=10, method="exact")
    assert graph._nnz() == 300 * 10  # the zero row stays isolated
    torch.testing.assert_close(graph.to_dense(), exact.to_dense())


@needs_faiss
def test_approximate_recall_is_measured_against_brute_force(monkeypatch):
    # a random cloud in 24-d has near-ties: the measured recall is what a brute-force count of the lists says
    features = np.random.default_rng(6).normal(size=(2000, 24)).astype(np.float32)
    monkeypatch.setattr(knn, "RECALL_SAMPLE", 2000)  # every row: the measured recall is the graph's recall
    rows, cols, info = knn.approximate_knn_edges(features, 10)
    recall = info["recall"]
    exact_rows, exact_cols = knn.knn_edges(features, 10)
    exact = set(zip(exact_rows.tolist(), exact_cols.tolist()))
    assert info["index"] == "HNSW" and info["sampled"] == 2000 and recall == pytest.approx(len(exact & set(zip(rows.tolist(), cols.tolist()))) / len(exact))
    assert 0.9 <= recall <= 1.0
    assert np.all(np.bincount(rows, minlength=2000) == 10) and np.all(cols[::10] >= 0)
    assert np.all([r in cols[10 * r:10 * r + 10] for r in range(2000)])  # every row keeps itself


@pytest.mark.parametrize("n,method,expected", [(100, "auto", "exact"), (101, "auto", "approximate"),
                                               (5, "approximate", "approximate"), (10 ** 6, "exact", "exact")])
def test_auto_is_exact_up_to_the_size_limit(n, method, expected):
    assert knn.choose_method(n, method, exact_max_items=100) == expected
    with pytest.raises(ValueError, match="kNN method must be one of"):
        knn.choose_method(n, "fast", exact_max_items=100)


def test_without_faiss_the_approximate_graph_is_built_exactly_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(knn, "_faiss", lambda: None)
    features = separated_clusters(n_clusters=4, size=5, dim=4)
    graph = knn_graph(features, k=3, method="auto", exact_max_items=10)
    assert "faiss is not installed" in caplog.text
    torch.testing.assert_close(graph.to_dense(), knn_graph(features, k=3).to_dense())


@needs_faiss
def test_exact_and_approximate_graphs_never_share_a_cache(tmp_path, monkeypatch):
    features = separated_clusters(n_clusters=4, size=5, dim=4)
    cache = str(tmp_path / "image.k3.npz")
    built = []
    real = knn.approximate_knn_edges
    monkeypatch.setattr(knn, "approximate_knn_edges", lambda *a: built.append("approximate") or real(*a))
    knn_graph(features, k=3, cache_file=cache, method="exact")
    knn_graph(features, k=3, cache_file=cache, method="approximate")
    knn_graph(features, k=3, cache_file=cache, method="approximate")
    assert built == ["approximate"]  # the exact cache was not taken for an approximate graph; the second was reused
    with np.load(cache, allow_pickle=False) as stored:
        assert str(stored["fingerprint"]).endswith(":approximate")


# -- edge cases, refusals, and a cache that cannot be trusted ----------------------------------------------------------
def test_one_neighbour_is_the_row_itself_and_a_trailing_zero_row_keeps_the_shape():
    features = np.array([[1, 0], [0.9, 0.1], [0, 1], [0, 0]], dtype=np.float64)  # float64 in, last row zero
    rows, cols = knn.knn_edges(features, 1)
    assert rows.dtype == cols.dtype == np.int64 and rows.tolist() == cols.tolist() == [0, 1, 2]
    graph = knn_graph(features, k=1)
    assert graph.shape == (4, 4)
    np.testing.assert_array_equal(graph.to_dense().numpy(), np.diag([1.0, 1.0, 1.0, 0.0]))


def test_all_zero_features_have_no_edges_and_bad_shapes_or_k_are_refused():
    rows, cols = knn.knn_edges(np.zeros((3, 2), dtype=np.float32), 2)
    assert rows.dtype == cols.dtype == np.int64 and rows.shape == cols.shape == (0,)
    with pytest.raises(ValueError, match=r"features must be 2-d \(items x dim\), got shape \(3,\)"):
        knn.knn_edges(np.ones(3, dtype=np.float32), 2)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        knn.knn_edges(np.ones((3, 2), dtype=np.float32), 0)


def test_a_tensor_has_the_fingerprint_of_its_float32_array():
    features = np.random.default_rng(0).normal(size=(6, 3))
    assert knn.features_fingerprint(torch.from_numpy(features)) == knn.features_fingerprint(features.astype(np.float32))


def test_the_exact_graph_keeps_its_cache_key(tmp_path):
    features = np.random.default_rng(3).normal(size=(10, 4)).astype(np.float32)
    cache = tmp_path / "image.k3.npz"
    knn_graph(features, k=3, cache_file=str(cache), method="exact")
    with np.load(cache, allow_pickle=False) as stored:
        assert str(stored["fingerprint"]) == knn.features_fingerprint(features)


def rewrite(cache, **changes):
    """The cache file with some of its arrays replaced (or removed, for a value None), nothing else touched."""
    with np.load(cache, allow_pickle=True) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays.update(changes)
    np.savez(cache, **{key: value for key, value in arrays.items() if value is not None})


def test_a_cache_that_cannot_be_trusted_is_rebuilt_with_the_reason(tmp_path, caplog):
    features = np.random.default_rng(3).normal(size=(12, 4)).astype(np.float32)
    cache = str(tmp_path / "image.k3.npz")
    caplog.set_level("INFO")
    expected = knn_graph(features, k=3, cache_file=cache).to_dense()
    with np.load(cache) as stored:
        rows, cols = stored["rows"], stored["cols"]
    cases = [
        ({"checksum": None, "values": None}, "has no values, checksum (an older or foreign file); rebuilding it"),
        ({"fingerprint": np.str_("other")}, "was built from other features or k; rebuilding it"),
        ({"k": np.int64(4)}, None),  # the key asked for below: k = 4 on a graph of k = 3
        ({"rows": rows[:-1], "cols": np.concatenate([rows[-1:], cols])}, "does not match its checksum"),  # re-cut
        ({"rows": rows.astype(object)}, "unreadable (Object arrays cannot be loaded when allow_pickle=False"),
    ]
    for changes, reason in cases:
        knn_graph(features, k=3, cache_file=cache)  # a sound cache again
        rewrite(cache, **changes)
        caplog.clear()
        k = int(changes["k"]) if "k" in changes else 3
        graph = knn_graph(features, k=k, cache_file=cache)
        assert (reason or "does not match its checksum (edited or damaged); rebuilding it") in caplog.text, changes
        if k == 3:
            torch.testing.assert_close(graph.to_dense(), expected)
    with open(cache, "wb") as f:
        f.write(b"not a zip file")
    caplog.clear()
    knn_graph(features, k=3, cache_file=cache)
    assert "unreadable" in caplog.text and "rebuilding it" in caplog.text


def test_a_cache_is_written_beside_its_name_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    features = np.random.default_rng(3).normal(size=(12, 4)).astype(np.float32)
    cache = tmp_path / "sub" / "image.k3.npz"
    moves = []
    real_replace = knn.os.replace
    monkeypatch.setattr(knn.os, "replace", lambda src, dst: moves.append((src, dst)) or real_replace(src, dst))
    knn_graph(features, k=3, cache_file=str(cache))
    assert len(moves) == 1 and moves[0][1] == str(cache) and knn.os.path.dirname(moves[0][0]) == str(cache.parent)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(knn.np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        knn_graph(features, k=4, cache_file=str(tmp_path / "sub" / "image.k4.npz"))
    assert sorted(p.name for p in cache.parent.iterdir()) == ["image.k3.npz"]  # no temporary file left


@needs_faiss
def test_approximate_edge_cases(monkeypatch):
    # duplicates (k = 1: each row must still keep itself), rows of small norm, a float64 input
    features = np.array([[0.1, 0.0], [0.1, 0.0], [0.0, 0.2], [0.0, 0.2], [0.0, 0.0]], dtype=np.float64)
    rows, cols, info = knn.approximate_knn_edges(features, 1)
    assert rows.tolist() == cols.tolist() == [0, 1, 2, 3]
    assert info == {"index": "HNSW", "recall": pytest.approx(info["recall"]), "sampled": 4}
    assert set(knn.approximate_knn_edges(features, 2)[1].tolist()) == {0, 1, 2, 3}
    rows, cols, info = knn.approximate_knn_edges(np.zeros((3, 2), dtype=np.float32), 2)
    assert rows.dtype == cols.dtype == np.int64 and rows.shape == cols.shape == (0,)
    assert info == {"index": "none", "recall": 1.0, "sampled": 0}
    monkeypatch.setattr(knn, "HNSW_MAX_ITEMS", 4)
    assert knn.approximate_knn_edges(features, 1)[2]["index"] == "HNSW"  # up to HNSW_MAX_ITEMS items inclusive


def test_the_approximate_graph_without_faiss_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(knn, "_faiss", lambda: None)
    with pytest.raises(ImportError, match=r"^the approximate kNN graph needs faiss: pip install faiss-cpu \(the 'scale' extra\)$"):
        knn.approximate_knn_edges(np.ones((3, 2), dtype=np.float32), 1)
