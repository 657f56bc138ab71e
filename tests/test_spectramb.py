"""SpectraMB on a tiny multi-behavior dataset object that implements the dataset contract
(behaviors, target_behavior, behavior_matrix, all_behaviors_matrix), then end to end on ml-100k-mb."""
import io

import pytest
import torch

from recbole_spectral.errors import ConfigError
from recbole_spectral.model.multibehavior.spectramb import SpectraMB
from tests.helpers import TinyMultiBehaviorDataset, model_config, run_cli

N_USERS, N_ITEMS = TinyMultiBehaviorDataset.n_users, TinyMultiBehaviorDataset.n_items


# The structural tests below run on the paper's plain configuration (xavier init, identity filters, one layer,
# unit output weights), where switches and hand computations are exact; the shipped defaults (the official
# model part) are checked on their own.
PLAIN = {"init": "xavier", "filter_init": "identity", "n_layers": 1, "fused_weight": 1.0, "global_weight": 1.0,
         "residual_weight": 1.0, "history_term": False, "reg_weight": 1e-4, "final_reg_weight": 0.0,
         "weight_decay": 0.0}


def make_config(**overrides):
    return model_config("SpectraMB", **{"embedding_size": 8, "attention_size": 4, **PLAIN, **overrides})


def make_model(**overrides):
    torch.manual_seed(0)
    return SpectraMB(make_config(**overrides), TinyMultiBehaviorDataset())


def batch():
    return {"user_id": torch.tensor([1, 2, 3, 4]), "item_id": torch.tensor([1, 2, 3, 4]),
            "neg_item_id": torch.tensor([5, 6, 7, 8])}


def randomise_filters(model):
    with torch.no_grad():
        for f in [*model.view_filters, model.global_filter]:
            f.weight.normal_()


def final_embeddings(model):
    with torch.no_grad():
        return torch.cat(model.compute_embeddings())


def test_defaults_are_read_from_the_yaml():
    torch.manual_seed(0)
    model = SpectraMB(model_config("SpectraMB", embedding_size=8, attention_size=4), TinyMultiBehaviorDataset())
    assert (model.n_layers, model.filter_mode, model.fusion, model.attention.mode) == (3, "static", "attention", "feature")
    assert len(model.view_filters) == 3 and model.attention.dim == 8
    assert model.history_term is None  # beyond the paper: off by default


def test_the_defaults_are_the_official_model_part_with_a_cpu_schedule():
    from recbole_spectral.config import SpectralConfig

    default = SpectralConfig("SpectraMB", "ml-100k-mb", config_dict={"use_gpu": False})
    official = SpectralConfig("SpectraMB", "ml-100k-mb", [str(paths.recipe_file("SpectraMB-official.yaml"))],
                              {"use_gpu": False})
    model_keys = set(SpectraMB.hyperparameters) | {"weight_decay"}
    assert {k: default[k] for k in model_keys} == {k: official[k] for k in model_keys}
    assert not default["history_term"] and default["n_layers"] == 3
    assert (default["train_batch_size"], default["learning_rate"], default["stopping_step"]) == (4096, 2e-3, 10)


@pytest.mark.parametrize("variant", [{}, {"filter_mode": "context"}, {"attention_softmax": "view"}])
def test_gradients_reach_every_view_filter_the_global_filter_and_the_attention(variant):
    model = make_model(**variant)
    randomise_filters(model)
    model.calculate_loss(batch()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    names = {n for n, _ in model.named_parameters()}
    assert {f"view_filters.{i}.weight" for i in range(3)} | {"global_filter.weight"} <= names
    assert {f"attention.hidden.{i}.weight" for i in range(3)} | {f"attention.score.{i}.weight" for i in range(3)} <= names


@pytest.mark.parametrize("ablation", [{"spectral_filter": False}, {"fusion": "mean"}, {"residual_global": False},
                                      {"filter_mode": "context"}, {"attention_softmax": "view"}])
def test_each_switch_changes_the_output_for_the_same_weights(ablation):
    full = make_model()
    randomise_filters(full)
    switched = make_model(**ablation)
    # context filters start with zero modulation; give them one so the switch matters
    if ablation.get("filter_mode") == "context":
        for f in switched.view_filters:
            torch.nn.init.normal_(f.modulation.weight)
    own = switched.state_dict()  # the view-softmax scorer has another shape: it keeps its own weights
    switched.load_state_dict({k: v for k, v in full.state_dict().items() if own[k].shape == v.shape}, strict=False)
    assert not torch.allclose(final_embeddings(full), final_embeddings(switched), atol=1e-4)


def test_no_filtering_with_identity_filters_changes_nothing():
    # the "no spectral filtering" ablation is exactly the model with all-ones filters
    assert torch.allclose(final_embeddings(make_model()), final_embeddings(make_model(spectral_filter=False)))


def test_full_sort_predict_caches_and_training_clears_the_cache():
    model = make_model()
    model.eval()
    scores = model.full_sort_predict({"user_id": torch.tensor([1, 2])})
    assert scores.shape == (2 * N_ITEMS,)
    user_e, item_e = final_embeddings(model).split([N_USERS, N_ITEMS])
    torch.testing.assert_close(scores, (user_e[[1, 2]] @ item_e.T).view(-1))
    assert model._cached_embeddings is not None
    assert not any(isinstance(t, torch.nn.Parameter) for t in model._cached_embeddings)
    assert set(model.state_dict()) == {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    model.train()
    assert model._cached_embeddings is None


def test_reloading_weights_clears_the_cache_and_the_state_dict_loads_weights_only():
    model = make_model()
    randomise_filters(model)
    model.eval()
    before = model.full_sort_predict({"user_id": torch.tensor([1])})
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    other = make_model(attention_softmax="feature")
    other.eval()
    other.full_sort_predict({"user_id": torch.tensor([1])})  # a stale cache from other weights
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(other.full_sort_predict({"user_id": torch.tensor([1])}), before)


def test_a_plain_dataset_is_refused():
    class Plain:
        def num(self, field):
            return 3

    with pytest.raises(ConfigError, match="multi-behavior dataset"):
        SpectraMB(make_config(), Plain())


def test_symmetric_propagation_matches_plain_propagation_and_its_gradients():
    from recbole_spectral.layers.graph import normalized_bipartite_graph, propagate

    graph = normalized_bipartite_graph(TinyMultiBehaviorDataset().all_behaviors_matrix())
    e1 = torch.randn(N_USERS + N_ITEMS, 4, requires_grad=True)
    e2 = e1.detach().clone().requires_grad_(True)
    plain = propagate(graph, e1, 3, "sum", l2_normalize=True)
    fast = propagate(graph.to_sparse_csr(), e2, 3, "sum", l2_normalize=True, symmetric=True)
    torch.testing.assert_close(fast, plain)
    weights = torch.randn_like(plain)
    (plain * weights).sum().backward()
    (fast * weights).sum().backward()
    torch.testing.assert_close(e2.grad, e1.grad)


# -- end to end on the shipped ml-100k-mb (built on demand from RecBole's bundled ml-100k) -------------
def test_one_epoch_on_ml_100k_mb_through_the_cli_and_the_checkpoint_reloads(workdir):
    proc = run_cli("--model=SpectraMB", "--dataset=ml-100k-mb", "--epochs=1", "--state=INFO",
                   "--eval_batch_size=1000000", "--train_batch_size=8192", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test result: hit@10:" in proc.stdout
    [checkpoint_file] = list((workdir / "saved").glob("SpectraMB-*.pth"))
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    assert {f"view_filters.{i}.weight" for i in range(3)} <= set(checkpoint["state_dict"])

    from recbole_spectral.quick_start import load_data_and_model
    from recbole_spectral.trainer import trainer_class

    config, model, dataset, _, _, test_data = load_data_and_model(str(checkpoint_file))
    assert model.behaviors == ["dislike", "neutral", "like"] and model.target_behavior == "like"
    result = trainer_class(config)(config, model).evaluate(test_data, load_best_model=False)
    printed = proc.stdout.split("test result: ")[1].splitlines()[0]
    assert f"hit@10: {result['hit@10']:.4f}" in printed


def test_odd_embedding_size_through_the_cli_is_one_line(workdir):
    proc = run_cli("--model=SpectraMB", "--dataset=ml-100k-mb", "--epochs=1", "--embedding_size=63",
                   "--state=ERROR", cwd=workdir)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # the error is the last line (the dataset's log lines, if any, come before it)
    assert "config key 'embedding_size'" in proc.stderr.strip().splitlines()[-1] and "got 63" in proc.stderr


# -- options: init, filter init, regularisers, output weights, views, the history term ------
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from recbole_spectral import paths  # noqa: E402
from recbole_spectral.model.multibehavior.spectramb import VIEW_MODES  # noqa: E402


def dense_norm_adj(matrix):
    """D^-1/2 A D^-1/2 of the bipartite graph of ``matrix``, by hand (dense numpy)."""
    r = (np.asarray(matrix.todense()) > 0).astype(np.float64)
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1)
    inv = np.where(deg > 0, deg ** -0.5, 0.0)
    return torch.tensor(inv[:, None] * a * inv[None, :], dtype=torch.float32)


def hand_propagate(adj, x, n_layers):
    out, cur = x, x
    for _ in range(n_layers):
        cur = torch.nn.functional.normalize(adj @ cur, dim=1)
        out = out + cur
    return out


def test_init_normal_has_the_official_statistics_and_xavier_the_table_shaped_ones():
    normal = make_model(init="normal", init_std=0.1, embedding_size=64, attention_size=8)
    w = torch.cat([normal.user_embedding.weight, normal.item_embedding.weight]).detach()
    assert abs(w.std().item() - 0.1) < 0.01 and abs(w.mean().item()) < 0.01
    assert abs(w.norm(dim=1).mean().item() - 0.8) < 0.08  # sqrt(64) * 0.1
    # xavier: uniform with std sqrt(2 / (rows + d)); on taobao-15k (27k rows) row norms ~0.09, 9x below N(0, 0.1)
    xavier = make_model(embedding_size=64, attention_size=8)
    x = xavier.item_embedding.weight.detach()
    bound = (6 / (N_ITEMS + 64)) ** 0.5
    assert x.abs().max() <= bound and abs(x.std().item() - (2 / (N_ITEMS + 64)) ** 0.5) < 0.03


def test_filter_init_identity_is_all_ones_and_random_is_complex_standard_normal():
    identity = make_model()
    for f in [*identity.view_filters, identity.global_filter]:
        assert torch.equal(f.weight[:, 0], torch.ones(5)) and torch.equal(f.weight[:, 1], torch.zeros(5))
    random = make_model(filter_init="random", embedding_size=64, attention_size=8)
    w = torch.cat([f.weight.detach().flatten() for f in [*random.view_filters, random.global_filter]])
    assert w.numel() == 4 * 33 * 2 and abs(w.std().item() - 1) < 0.15 and abs(w.mean().item()) < 0.2
    assert not torch.allclose(random.view_filters[0].weight, random.view_filters[1].weight)


def test_final_embedding_penalty_on_hand_set_embeddings(monkeypatch):
    model = make_model(reg_weight=0.0, final_reg_weight=0.5)
    u = torch.tensor([[3.0, 4.0], [0.0, 0.0]])                      # ||U||_F = 5
    pos = torch.tensor([[1.0, 0.0], [0.0, 2.0]])                    # ||P||_F = sqrt(5)
    neg = torch.tensor([[0.0, 0.0], [2.0, 0.0]])                    # ||N||_F = 2
    monkeypatch.setattr(model, "batch_embeddings", lambda *args: (u, pos, neg))
    b = {"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([1, 2]), "neg_item_id": torch.tensor([3, 4])}
    bpr = -torch.log(1e-10 + torch.sigmoid(torch.tensor([3.0 - 0.0, 0.0 - 0.0]))).mean()
    expected = bpr + 0.5 * (5 + 5 ** 0.5 + 2) / 2
    torch.testing.assert_close(model.calculate_loss(b).reshape(()), expected)


def test_weight_decay_reaches_every_parameter_through_recboles_optimizer():
    from recbole.trainer import Trainer

    model = make_model(filter_mode="context", history_term=True, extra_views=["also_bought"])
    trainer = object.__new__(Trainer)
    trainer.model, trainer.learner, trainer.learning_rate, trainer.weight_decay = model, "adam", 1e-3, 1e-3
    trainer.config, trainer.logger = {"reg_weight": 0.0}, None
    optimizer = trainer._build_optimizer()
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters()}
    assert all(g["weight_decay"] == 1e-3 for g in optimizer.param_groups)


@pytest.mark.parametrize("options", [{}, {"view_mode": "cascade"}, {"view_mode": "cascade_global", "filter_mode": "context"},
                                     {"extra_views": ["also_bought", "not_bought"], "view_mode": "cascade"},
                                     {"attention_softmax": "view", "extra_views": ["not_bought"]}])
def test_batch_rows_equal_the_full_embeddings(options):
    model = make_model(**options)
    randomise_filters(model)
    if options.get("filter_mode") == "context":
        for f in model.view_filters:
            torch.nn.init.normal_(f.modulation.weight)
    user_e, item_e = model.compute_embeddings()
    b = batch()
    u, pos, neg = model.batch_embeddings(b["user_id"], b["item_id"], b["neg_item_id"])
    torch.testing.assert_close(u, user_e[b["user_id"]])
    torch.testing.assert_close(pos, item_e[b["item_id"]])
    torch.testing.assert_close(neg, item_e[b["neg_item_id"]])


def test_cascade_differs_from_parallel_and_equals_the_hand_computed_cascade():
    data = TinyMultiBehaviorDataset()
    parallel, cascade, from_global = (make_model(view_mode=m, n_layers=2) for m in VIEW_MODES)
    assert not torch.allclose(final_embeddings(parallel), final_embeddings(cascade), atol=1e-4)
    ego = torch.cat([cascade.user_embedding.weight, cascade.item_embedding.weight]).detach()
    adj = {b: dense_norm_adj(data.behavior_matrix(b)) for b in data.behaviors}
    raw_global = hand_propagate(dense_norm_adj(data.all_behaviors_matrix()), ego, 2)
    for model, start in ((cascade, ego), (from_global, raw_global)):
        expected, previous = [], start
        for b in data.behaviors:  # view -> cart -> buy, identity filters
            previous = hand_propagate(adj[b], previous, 2)
            expected.append(previous)
        with torch.no_grad():
            got_global, _, views = model._views()
        torch.testing.assert_close(got_global, raw_global)
        for got, want in zip(views, expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_target_views_are_exact_on_a_tiny_example():
    from recbole_spectral.layers.multibehavior.target_views import also_bought, not_bought, target_view_matrices

    view = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=np.float32))
    buy = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]], dtype=np.float32))
    np.testing.assert_array_equal(also_bought(view, buy).toarray(), [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(not_bought(view, buy).toarray(), [[1, 0, 0, 1], [0, 0, 1, 0], [1, 0, 0, 0]])
    assert also_bought(view, buy).nnz + not_bought(view, buy).nnz == view.nnz

    data = TinyMultiBehaviorDataset()
    names = [n for n, _, _ in target_view_matrices(data, ["also_bought", "not_bought"])]
    assert names == ["also_bought:view", "also_bought:cart", "not_bought:view", "not_bought:cart"]
    model = make_model(extra_views=["also_bought", "not_bought"])
    assert model.view_names == ["view", "cart", "buy", *names] and len(model.view_filters) == 7
    cart, target = data.behavior_matrix("cart").toarray(), data.behavior_matrix("buy").toarray()
    graph = model.view_graphs[model.view_names.index("not_bought:cart")].to_dense()
    torch.testing.assert_close(graph, dense_norm_adj(sp.csr_matrix((cart > 0) & ~(target > 0))))


def test_observed_pairs_membership_and_row_gather():
    from recbole_spectral.layers.multibehavior.observed import ObservedPairs

    m = sp.csr_matrix(np.array([[0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=np.float32))
    pairs = ObservedPairs(m)
    users, items = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 2, 3, 0, 2, 3])
    assert pairs.contains(users, items).tolist() == [True, False, False, True, True, False]
    row, item = pairs.rows(torch.tensor([2, 1, 0, 2]))
    assert sorted(zip(row.tolist(), item.tolist())) == [(0, 0), (0, 2), (2, 1), (2, 3), (3, 0), (3, 2)]


def test_target_views_leave_their_inputs_unchanged_and_refuse_unknown_kinds():
    from recbole_spectral.layers.multibehavior.target_views import also_bought, not_bought, target_view_matrices

    view = sp.csr_matrix(np.array([[2, 1, 0], [0, 3, 1]], dtype=np.float32))  # counts, not 0/1
    buy = sp.csr_matrix(np.array([[1, 0, 0], [0, 2, 0]], dtype=np.float32))
    np.testing.assert_array_equal(also_bought(view, buy).toarray(), [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(not_bought(view, buy).toarray(), [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(view.toarray(), [[2, 1, 0], [0, 3, 1]])
    np.testing.assert_array_equal(buy.toarray(), [[1, 0, 0], [0, 2, 0]])
    with pytest.raises(ValueError, match=r"target views must be among \('also_bought', 'not_bought'\), got \['bought'\]"):
        target_view_matrices(TinyMultiBehaviorDataset(), ["also_bought", "bought"])


def test_observed_pairs_of_an_empty_or_one_pair_matrix():
    from recbole_spectral.layers.multibehavior.observed import ObservedPairs

    users, items = torch.tensor([[0, 1], [2, 2]]), torch.tensor([[1, 1], [0, 3]])
    empty = ObservedPairs(sp.csr_matrix((3, 4), dtype=np.float32)).contains(users, items)
    assert empty.dtype == torch.bool and empty.shape == (2, 2) and not empty.any()
    one = ObservedPairs(sp.csr_matrix(([1.0], ([1], [1])), shape=(3, 4))).contains(users, items)
    assert one.tolist() == [[False, True], [False, False]]


def test_output_weights_mix_the_terms_as_stated():
    model = make_model(fused_weight=0.25, global_weight=0.5, residual_weight=2.0)
    randomise_filters(model)
    with torch.no_grad():
        raw_global, purified, views = model._views()
        # the fused term by its formula, F = mean_b(d · softmax_feat(tanh(G W1_b + b1_b) W2_b) ⊙ P_b), not model.attention's
        fused = torch.stack([8 * torch.softmax(torch.tanh(purified @ h.weight.T + h.bias) @ s.weight.T, -1) * v
                             for h, s, v in zip(model.attention.hidden, model.attention.score, views)]).mean(0)
        expected = 0.25 * fused + 0.5 * purified + 2.0 * raw_global
    torch.testing.assert_close(final_embeddings(model), expected)


@pytest.mark.parametrize("recipe", ["SpectraMB-official.yaml", "SpectraMB-official-tmall.yaml"])
def test_official_recipe_is_one_config_file(recipe, workdir):
    from recbole_spectral.config import SpectralConfig

    path = paths.recipe_file(recipe)
    config = SpectralConfig("SpectraMB", "ml-100k-mb", [str(path)], {"use_gpu": False})
    expected = {"init": "normal", "init_std": 0.1, "filter_init": "random", "n_layers": 3, "reg_weight": 0.0,
                "final_reg_weight": 1e-3, "weight_decay": 1e-3, "fused_weight": 1 / 64, "global_weight": 0.0,
                "residual_weight": 1.25 if "tmall" not in recipe else 1.0, "learning_rate": 1e-3,
                "train_batch_size": 1024, "epochs": 200, "stopping_step": 10, "view_mode": "parallel",
                "extra_views": [], "history_term": False}
    assert {k: config[k] for k in expected} == expected


def test_inference_removal_of_the_fused_term_is_exact_and_restored():
    model = make_model(fused_weight=0.5)
    randomise_filters(model)
    no_fused = make_model(fused_weight=0.0)
    no_fused.load_state_dict(model.state_dict())
    model.eval(), no_fused.eval()
    users = {"user_id": torch.arange(1, N_USERS)}
    with torch.no_grad():
        before = model.full_sort_predict(users)
        with model.inference_ablations()["without the fused views"]():
            torch.testing.assert_close(model.full_sort_predict(users), no_fused.full_sort_predict(users))
        torch.testing.assert_close(model.full_sort_predict(users), before)  # restored afterwards
