"""The model contract (recbole_spectral.model.base): dataset kinds and their one-line refusals, the embedding cache
of EmbeddingRecommender, the zero loss of TrainingFreeRecommender."""
from types import SimpleNamespace

import pytest
import torch
from recbole.model.general_recommender.bpr import BPR

from recbole_spectral.errors import ConfigError
from recbole_spectral.model.base import (
    EmbeddingRecommender,
    SpectralRecommender,
    TrainingFreeRecommender,
    check_dataset_kind,
    dataset_kind_of,
)
from recbole_spectral.model.multimodal.vbpr import VBPR
from tests.helpers import TinyMultiBehaviorDataset, model_config


def test_the_kind_of_a_dataset():
    assert dataset_kind_of(SimpleNamespace()) == "plain"  # a RecBole dataset has neither attribute
    assert dataset_kind_of(SimpleNamespace(modalities=[])) == "plain"
    assert dataset_kind_of(SimpleNamespace(modalities=["image"])) == "multimodal"
    assert dataset_kind_of(SimpleNamespace(target_behavior="buy", modalities=["image"])) == "multibehavior"


def test_a_model_runs_on_the_kinds_it_declares_and_is_refused_on_others_in_one_line():
    class Anything(SpectralRecommender):
        pass

    class Multimodal(SpectralRecommender):
        dataset_kind = "multimodal"

    for kind in ("plain", "multimodal", "multibehavior"):
        check_dataset_kind(Anything, kind, "d")
        check_dataset_kind(BPR, kind, "d")  # RecBole's own models declare nothing: any dataset
    check_dataset_kind(Multimodal, "multimodal", "d")
    with pytest.raises(ConfigError) as refused:
        check_dataset_kind(Multimodal, "plain", "ml-100k")
    assert str(refused.value) == ("Multimodal needs a multimodal dataset (a 'modalities' list in the dataset YAML); "
                                  "dataset 'ml-100k' has none")


def test_an_unknown_declared_kind_is_named():
    class Audio(SpectralRecommender):
        dataset_kind = "audio"

    with pytest.raises(ConfigError) as refused:
        check_dataset_kind(Audio, "plain", "d")
    assert str(refused.value) == "Audio.dataset_kind: expected one of ['any', 'multibehavior', 'multimodal'], got 'audio'"


def test_building_a_model_on_the_wrong_kind_of_dataset_is_refused():
    with pytest.raises(ConfigError, match=r"^VBPR needs a multimodal dataset .*; dataset 'tiny' has none$"):
        VBPR(model_config("VBPR"), TinyMultiBehaviorDataset())


class TableModel(EmbeddingRecommender):
    """⟨e_u, e_i⟩ from one free table: the smallest EmbeddingRecommender."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.table = torch.nn.Parameter(torch.randn(self.n_users + self.n_items, 2))

    def compute_embeddings(self):
        return self.table.split([self.n_users, self.n_items])


def test_evaluation_scores_come_from_the_cache_until_it_is_cleared():
    model = TableModel(model_config("VBPR"), TinyMultiBehaviorDataset())
    model.eval()
    users = {"user_id": torch.tensor([1, 3])}
    user_e, item_e = model.compute_embeddings()
    first = model.full_sort_predict(users)
    torch.testing.assert_close(first, (user_e[[1, 3]] @ item_e.T).view(-1))
    model.table.data = model.table.data * 2.0  # new weights (a new tensor: the cache holds views of the old one)
    assert torch.equal(model.full_sort_predict(users), first)  # cached
    model.clear_cache()
    torch.testing.assert_close(model.full_sort_predict(users), 4 * first)


def test_a_training_free_model_holds_one_zero_and_its_loss_is_zero_with_zero_gradient():
    class Constant(TrainingFreeRecommender):
        def score_users(self, users):
            return torch.ones(len(users), self.n_items)

    model = Constant(model_config("VBPR"), TinyMultiBehaviorDataset())
    assert list(model.state_dict()) == ["dummy"] and torch.equal(model.dummy.detach(), torch.zeros(1))
    loss = model.calculate_loss(None)
    loss.backward()
    assert float(loss) == 0.0 and torch.equal(model.dummy.grad, torch.zeros(1))
