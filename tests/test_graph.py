"""Graph building blocks: normalisation and propagation on a tiny graph with known values."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recbole_spectral.layers.graph import (
    FixedSparse,
    bipartite_adjacency,
    normalized_bipartite_graph,
    propagate,
    sym_normalize,
)

# 2 users x 3 items: u0-{i0,i1}, u1-{i1}; the duplicate (0, 1) collapses
R = sp.coo_matrix((np.ones(4), ([0, 0, 1, 0], [0, 1, 1, 1])), shape=(2, 3))


def test_bipartite_adjacency_is_symmetric_binary():
    a = bipartite_adjacency(R).toarray()
    assert a.shape == (5, 5)
    np.testing.assert_array_equal(a, a.T)
    np.testing.assert_array_equal(a[:2, 2:], [[1, 1, 0], [0, 1, 0]])


def test_sym_normalize_matches_dense_formula_and_keeps_isolated_nodes_zero():
    a = bipartite_adjacency(R).toarray()
    d = a.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-12)), 0)
    expected = inv[:, None] * a * inv[None, :]
    np.testing.assert_allclose(sym_normalize(a).toarray(), expected, rtol=1e-6)
    assert np.all(expected[4] == 0)  # item 2 has no interactions
    # u0 (degree 2) - i1 (degree 2): 1/sqrt(2*2)
    assert np.isclose(expected[0, 3], 0.5)


def test_propagation_zero_layers_is_identity_and_one_layer_is_a_product():
    g = normalized_bipartite_graph(R)
    e = torch.randn(5, 4)
    assert torch.equal(propagate(g, e, 0), e)
    dense = g.to_dense()
    torch.testing.assert_close(propagate(g, e, 1, aggregation="last"), dense @ e)
    torch.testing.assert_close(propagate(g, e, 2, aggregation="mean"), (e + dense @ e + dense @ dense @ e) / 3)
    normed = propagate(g, e, 1, aggregation="last", l2_normalize=True)
    rows = normed.norm(dim=1)
    assert torch.allclose(rows[rows > 0], torch.ones_like(rows[rows > 0]))


def test_propagation_without_the_input_layer_and_a_clear_error_for_an_unknown_aggregation():
    g = normalized_bipartite_graph(R)
    e = torch.randn(5, 4)
    dense = g.to_dense()
    torch.testing.assert_close(propagate(g, e, 2, aggregation="sum", include_input=False), dense @ e + dense @ dense @ e)
    with pytest.raises(ValueError, match=r"aggregation must be one of \('sum', 'mean', 'last'\), got 'max'"):
        propagate(g, e, 1, aggregation="max")


def test_propagation_gradient_is_the_transpose_product_unless_the_graph_is_declared_symmetric():
    # a non-symmetric graph: the default (symmetric=False) backward is Aᵀ G; symmetric=True would use A G
    a = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [0.5, 0.0, 0.0]])
    e = torch.randn(3, 2, requires_grad=True)
    g = torch.randn(3, 2)
    (propagate(a.to_sparse(), e, 1, aggregation="last") * g).sum().backward()
    torch.testing.assert_close(e.grad, a.T @ g)


def test_fixed_sparse_product_and_its_gradient_use_the_stored_transpose():
    s = torch.tensor([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.5]])
    fixed = FixedSparse(s.to_sparse())
    assert fixed.shape == (3, 4)
    torch.testing.assert_close(fixed.to_dense(), s)
    x = torch.randn(4, 2, requires_grad=True)
    g = torch.randn(3, 2)
    out = fixed @ x
    torch.testing.assert_close(out, s @ x)
    (out * g).sum().backward()
    torch.testing.assert_close(x.grad, s.T @ g)


def test_the_adjacency_leaves_a_weighted_float32_input_unchanged():
    r = sp.csr_matrix(np.array([[0.0, 2.5], [4.0, 0.0]], dtype=np.float32))
    a = bipartite_adjacency(r)
    assert r.data.tolist() == [2.5, 4.0]  # the caller's weights, not binarised in place
    assert a.toarray().tolist() == [[0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
