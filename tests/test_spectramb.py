"""SpectraMB on a tiny multi-behavior dataset object that implements the dataset contract
(behaviors, target_behavior, behavior_matrix, all_behaviors_matrix), then end to end on ml-100k-mb."""
import io

import pytest
import torch

from recbole_spectral.errors import ConfigError
from recbole_spectral.model.multibehavior.spectramb import SpectraMB
from tests.helpers import TinyMultiBehaviorDataset, model_config, run_cli

N_USERS, N_ITEMS = TinyMultiBehaviorDataset.n_users, TinyMultiBehaviorDataset.n_items


def make_config(**overrides):
    return model_config("SpectraMB", **{"embedding_size": 8, "attention_size": 4, **overrides})


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
    model = make_model()
    assert (model.n_layers, model.filter_mode, model.fusion, model.attention.mode) == (1, "static", "attention", "feature")
    assert len(model.view_filters) == 3 and model.attention.dim == 8


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
