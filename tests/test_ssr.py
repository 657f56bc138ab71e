"""SSR (recbole_spectral.model.multimodal.ssr): the model on a tiny in-test multimodal dataset implementing the
MultiModalDataset contract, checkpoint round trip, and a one-epoch CLI run on ml-100k-mm."""
import io

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_spectral.cli import main as cli_main
from recbole_spectral.layers.graph import propagate
from recbole_spectral.model.multimodal.ssr import SSR
from tests.helpers import TinyMultiModalDataset, model_config, pairwise_batch

N_USERS, N_ITEMS = TinyMultiModalDataset.n_users, TinyMultiModalDataset.n_items


def ssr_config(**overrides):
    return model_config("SSR", **{"embedding_size": 8, "knn_k": 3, **overrides})


def batch(n=16, seed=0):
    return pairwise_batch(N_USERS, N_ITEMS, n, seed)


@pytest.mark.parametrize("exact_max_nodes", [0, 10_000])
def test_sum_fusion_returns_the_propagated_signal(exact_max_nodes):
    """With fusion 'sum' the bands add back to X = g(Â)Z + g(Â)[0; smoothed features] W exactly."""
    torch.manual_seed(0)
    model = SSR(ssr_config(fusion="sum", exact_max_nodes=exact_max_nodes), TinyMultiModalDataset())
    d = model.embedding_size
    expected = propagate(model.norm_adj, model.learned_signal(), model.n_layers, aggregation="mean")
    for j, m in enumerate(model.modalities):
        fixed = propagate(model.norm_adj, model.fixed_signal[m], model.n_layers, aggregation="mean")
        expected[:, d * (j + 1): d * (j + 2)] += model.projection[m](fixed)
    users, items = model.compute_embeddings()
    assert torch.allclose(torch.cat([users, items]), expected, atol=1e-5)


def test_loss_backpropagates_to_every_part():
    torch.manual_seed(0)
    model = SSR(ssr_config(lambda_cl=1.0, lambda_mask=1.0, band_drop_prob=0.5), TinyMultiModalDataset())
    loss = model.calculate_loss(batch())
    assert torch.isfinite(loss)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name


def test_band_energies_are_balanced_at_calibration():
    model = SSR(ssr_config(), TinyMultiModalDataset())
    assert model.bands.shares.sum() == pytest.approx(1.0, abs=1e-6)
    # In this tiny fixture the projections' bias column puts ~75 % of the signal energy on the single
    # eigenvalue λ = 0 (the degree-weighted constant); an atom holding more than 1/M cannot be split,
    # so the first band keeps it. Without that component the borders balance the bands.
    assert model.bands.shares[0] > 0.5
    with torch.no_grad():
        for layer in model.projection.values():
            layer.weight[:, -1] = 0.0
    model.calibrate_bands()
    assert np.all(np.abs(model.bands.shares * model.n_bands - 1) < 0.10)


def test_one_modality_skips_alignment_and_trains():
    torch.manual_seed(0)
    model = SSR(ssr_config(lambda_cl=1.0), TinyMultiModalDataset(modalities=("audio",)))
    assert float(model.alignment_loss(torch.randn(5, 3, 16))) == 0.0
    model.calculate_loss(batch()).backward()
    assert model.user_preference["audio"].grad is not None


def test_three_modalities_use_equal_item_graph_weights_when_unnamed():
    model = SSR(ssr_config(), TinyMultiModalDataset(modalities=("a", "b", "c")))
    assert model.signal_dim == 4 * 8
    scores = model.full_sort_predict(Interaction({"user_id": torch.tensor([1, 2])}))
    assert scores.shape == (2 * N_ITEMS,)


def test_full_sort_predict_caches_and_training_clears_the_cache():
    model = SSR(ssr_config(), TinyMultiModalDataset())
    model.eval()
    users = Interaction({"user_id": torch.tensor([1, 2, 3])})
    first = model.full_sort_predict(users)
    cached = model._cached_embeddings
    assert model.full_sort_predict(users) is not None and model._cached_embeddings is cached
    model.train()
    assert model._cached_embeddings is None
    assert first.shape == (3 * N_ITEMS,)


def test_checkpoint_reloads_with_weights_only_and_restores_the_borders():
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    model = SSR(ssr_config(), dataset)
    with torch.no_grad():
        model.user_embedding.weight.mul_(3.0)
    model.calibrate_bands()  # borders move with the signal
    model.eval()
    users = Interaction({"user_id": torch.arange(1, N_USERS)})
    expected = model.full_sort_predict(users)
    state = model.state_dict()
    assert set(state) == {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    fresh = SSR(ssr_config(), dataset)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    fresh.eval()
    assert torch.allclose(fresh.full_sort_predict(users), expected, atol=1e-5)


def test_no_item_graph_and_fixed_split_switches():
    model = SSR(ssr_config(use_item_graph=False, band_method="fixed"), TinyMultiModalDataset())
    assert model.item_graph is None
    np.testing.assert_allclose(model.bands.borders_lambda(), model_config_borders(), atol=1e-9)
    model.calculate_loss(batch()).backward()


def model_config_borders():
    return ssr_config()["fixed_band_borders"]


def test_one_epoch_cli_run_on_ml100k_mm(workdir, capsys):
    code = cli_main([
        "--model=SSR", "--dataset=ml-100k-mm", "--epochs=1", "--use_gpu=False", "--state=WARNING",
        "--train_batch_size=8192", "--eval_batch_size=1000000",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "test result" in out and "recall@20" in out


def test_wide_features_are_reduced_by_truncated_svd_keeping_inner_products():
    dataset = TinyMultiModalDataset()
    rng = np.random.default_rng(1)
    for j, m in enumerate(dataset.modalities):  # rank-3 features, 8 and 12 columns wide
        dataset.features[m] = (rng.normal(size=(N_ITEMS, 3)) @ rng.normal(size=(3, 8 + 4 * j))).astype(np.float32)
    model = SSR(ssr_config(feature_rank=4), dataset)
    for m in dataset.modalities:
        assert model.projection[m].in_features == 4 + 1  # rank + the bias column
        reduced, _ = dataset.reduced_features(m, 4)
        raw = torch.as_tensor(dataset.features[m])
        assert torch.allclose(reduced @ reduced.T, raw @ raw.T, atol=1e-3 * float((raw @ raw.T).abs().max()))
    model.calculate_loss(batch()).backward()
