"""The model contract: what a plugin model declares, and the full-sort embedding cache it shares.

A plugin model is a RecBole ``GeneralRecommender`` subclass of :class:`SpectralRecommender` that states

- ``dataset_kind``: what it needs from the dataset — ``"any"``, ``"multibehavior"`` or ``"multimodal"``
  (checked once, here, with a one-line error naming the dataset);
- ``trainer_class`` (optional): a RecBole trainer class to use instead of RecBole's choice for its type;
- ``on_train_epoch_start(epoch_idx, train_data)`` (optional): a per-epoch step (re-sampling a graph,
  recalibrating bands, a warm-up stage), called by the plugin's trainer before every training epoch;
- ``prepare_training_batch(interaction)`` (optional): returns the training batch ``calculate_loss`` gets
  (e.g. with some negatives re-drawn), called by the plugin's trainer on every training batch.

For ``diagnose`` (``recbole_spectral.diagnose``) a model may also offer ``diagnostics()`` — a list of
figure specs ``{"name", "kind": lines|bars|heatmap|box, "title", "data", "sentence", ...}`` of what it
learned — and ``inference_ablations()`` — ``{name: context manager factory}`` that removes one part (a
behavior view, a band) at inference while the context is open.

Graph models whose scores are ⟨user embedding, item embedding⟩ subclass :class:`EmbeddingRecommender`
and implement ``compute_embeddings()``; the base caches the final embeddings for evaluation and drops
the cache whenever the weights may have changed (``train()``, ``load_state_dict``, and after every
optimiser step — the plugin's trainer calls :meth:`clear_cache` from an optimizer step hook).
"""
import os
import time
from contextlib import contextmanager
from logging import getLogger

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType

from recbole_spectral.errors import ConfigError
from recbole_spectral.layers.multibehavior.cascade_term import CascadeTerm, cascade_lists
from recbole_spectral.layers.multibehavior.history_term import HistoryTerm

DATASET_KINDS = {
    "any": None,
    "multibehavior": "a multi-behavior dataset (YAML keys 'behaviors' and 'target_behavior')",
    "multimodal": "a multimodal dataset (a 'modalities' list in the dataset YAML)",
}


def dataset_kind_of(dataset):
    """``multibehavior``, ``multimodal`` or ``plain`` for a built RecBole dataset."""
    if getattr(dataset, "target_behavior", None) is not None:
        return "multibehavior"
    if getattr(dataset, "modalities", None):
        return "multimodal"
    return "plain"


def check_dataset_kind(model_class, kind, dataset_name):
    """One-line :class:`ConfigError` when ``model_class`` cannot run on a dataset of ``kind``."""
    needed = getattr(model_class, "dataset_kind", "any")
    if needed not in DATASET_KINDS:
        raise ConfigError(f"{model_class.__name__}.dataset_kind: expected one of {list(DATASET_KINDS)}, got {needed!r}")
    if needed != "any" and kind != needed:
        raise ConfigError(f"{model_class.__name__} needs {DATASET_KINDS[needed]}; dataset '{dataset_name}' has none")


class SpectralRecommender(GeneralRecommender):
    """Base of every plugin model: the dataset requirement and the per-epoch hook."""

    input_type = InputType.PAIRWISE
    dataset_kind = "any"
    trainer_class = None

    def __init__(self, config, dataset):
        kind = dataset_kind_of(dataset)
        check_dataset_kind(type(self), kind, config["dataset"])
        super().__init__(config, dataset)
        if kind == "multimodal":
            self.modalities = list(dataset.modalities)  # the dataset's modalities, in its order
        elif kind == "multibehavior":  # funnel order, the target last; auxiliary = the others
            self.behaviors = list(dataset.behaviors)
            self.target_behavior = dataset.target_behavior
            self.auxiliary_behaviors = [b for b in self.behaviors if b != self.target_behavior]

    def on_train_epoch_start(self, epoch_idx, train_data):
        """Per-epoch step before training epoch ``epoch_idx``; nothing by default."""


class EmbeddingRecommender(SpectralRecommender):
    """Scores ŷ(u, i) = ⟨e_u, e_i⟩ from ``compute_embeddings()``, cached for evaluation; a multi-behavior
    model that declares ``history_term`` (:mod:`recbole_spectral.layers.multibehavior.history_term`) adds
    the history term h(u, i) to every score when ``history_term: True``, and one that declares ``cascade_term``
    (:mod:`recbole_spectral.layers.multibehavior.cascade_term`) the cascade term c(u, i) when
    ``cascade_term: True`` (both beyond the papers)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self._cached_embeddings = None
        self.history_term = None
        if "history_term" in (getattr(self, "hyperparameters", None) or {}) and config["history_term"]:
            matrices = [dataset.behavior_matrix(b) for b in self.auxiliary_behaviors]
            self.history_term = HistoryTerm(matrices, self.n_users, config["history_term_init"], self.device)
        self.cascade_term, self.hard_negatives, self.hard_negatives_depth = None, 0.0, 0
        if "cascade_term" in (getattr(self, "hyperparameters", None) or {}) and config["cascade_term"]:
            self.cascade_term = self._build_cascade_term(config, dataset)
            self.hard_negatives = config["cascade_term_hard_negatives"]
            self.hard_negatives_depth = config["cascade_term_hard_negatives_depth"]

    def _build_cascade_term(self, config, dataset):
        """The cascade term on the dataset's training matrices; its lists are cached in ``cascade_term_cache_dir``
        (default: <data folder>/cascade_cache, else <checkpoint_dir>/cascade_cache when that is not writable)."""
        if config["cascade_term_alpha"] + config["cascade_term_beta"] > 1.0 + 1e-9:
            raise ConfigError(f"config keys 'cascade_term_alpha' + 'cascade_term_beta' must be <= 1 (CascadingRank's "
                              f"γ = 1 - α - β), got {config['cascade_term_alpha']} + {config['cascade_term_beta']}")
        folder = config["cascade_term_cache_dir"]
        if folder is None and getattr(dataset, "dataset_path", None):
            folder = os.path.join(dataset.dataset_path, "cascade_cache")
            if not os.access(dataset.dataset_path, os.W_OK):
                folder = os.path.join(config["checkpoint_dir"], "cascade_cache")
        matrices = {b: dataset.behavior_matrix(b) for b in self.behaviors}
        start = time.time()
        lists = cascade_lists(self.behaviors, self.target_behavior, matrices, config["cascade_term_top_k"],
                              config["cascade_term_folds"], config["cascade_term_alpha"], config["cascade_term_beta"],
                              cache_dir=folder, log=getLogger().info, stages=config["cascade_term_stages"])
        getLogger().info(f"cascade term: rank lists ready in {time.time() - start:.1f} s ({folder or 'not cached'})")
        return CascadeTerm(lists, matrices[self.target_behavior], config["cascade_term_folds"],
                           config["cascade_term_top_k"], config["cascade_term_init"], self.device)

    def compute_embeddings(self):
        """(user embeddings n_users × d, item embeddings n_items × d) from the current weights."""
        raise NotImplementedError

    def embeddings(self):
        """Fresh embeddings while training (gradients flow); the cached ones otherwise."""
        if self.training:
            return self.compute_embeddings()
        if self._cached_embeddings is None:
            with torch.no_grad():
                user_e, item_e = self.compute_embeddings()
            self._cached_embeddings = (user_e.detach(), item_e.detach())
        return self._cached_embeddings

    def clear_cache(self):
        self._cached_embeddings = None

    def pair_scores(self, user_e, item_e, users, items):
        """ŷ for the rows of a batch: ⟨user_e[k], item_e[k]⟩ (+ h(users[k], items[k]) with the history term,
        + c(users[k], items[k]) with the cascade term)."""
        scores = (user_e * item_e).sum(-1)
        if self.history_term is not None:
            scores = scores + self.history_term(users, items)
        if self.cascade_term is not None:
            scores = scores + self.cascade_term(users, items)
        return scores

    def prepare_training_batch(self, interaction):
        """With the cascade term and ``cascade_term_hard_negatives`` p > 0: each negative is replaced with
        probability p by an item of the user's cascade list (hard negatives); the batch unchanged otherwise."""
        if self.cascade_term is not None and self.hard_negatives > 0:
            users, negatives = interaction[self.USER_ID], interaction[self.NEG_ITEM_ID]
            interaction[self.NEG_ITEM_ID] = self.cascade_term.hard_negatives(users, negatives, self.hard_negatives,
                                                                               depth=self.hard_negatives_depth)
        return interaction

    def bpr_loss(self, interaction):
        """BPR, mean of softplus(ŷ(u, i⁻) − ŷ(u, i⁺)) over the batch, on fresh embeddings."""
        user_e, item_e = self.compute_embeddings()
        users, pos, neg = interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        u = user_e[users]
        pos_scores = self.pair_scores(u, item_e[pos], users, pos)
        neg_scores = self.pair_scores(u, item_e[neg], users, neg)
        return torch.nn.functional.softplus(neg_scores - pos_scores).mean()

    def predict(self, interaction):
        user_e, item_e = self.embeddings()
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        return self.pair_scores(user_e[users], item_e[items], users, items)

    def full_sort_predict(self, interaction):
        user_e, item_e = self.embeddings()
        users = interaction[self.USER_ID]
        scores = user_e[users] @ item_e.T
        if self.history_term is not None:
            scores = self.history_term.add_to_rows(users, scores)
        if self.cascade_term is not None:
            scores = self.cascade_term.add_to_rows(users, scores)
        return scores.view(-1)

    # -- diagnose: parts removed at inference ---------------------------------------------------------
    @contextmanager
    def _without(self, attribute):
        term = getattr(self, attribute)
        setattr(self, attribute, None)
        try:
            yield
        finally:
            setattr(self, attribute, term)

    def inference_ablations(self):
        """{"without the history term": ..., "without the cascade term": ...} for the terms that are on (see
        ``diagnose``)."""
        terms = {"without the history term": "history_term", "without the cascade term": "cascade_term"}
        return {name: (lambda a=attribute: self._without(a)) for name, attribute in terms.items()
                if getattr(self, attribute) is not None}

    # -- cache hygiene: cached embeddings are stale once the weights change ---------------------
    def train(self, mode=True):
        self.clear_cache()
        return super().train(mode)

    def load_state_dict(self, state_dict, strict=True, **kwargs):
        self.clear_cache()  # the trainer reloads the best weights before testing
        return super().load_state_dict(state_dict, strict=strict, **kwargs)


class TrainingFreeRecommender(SpectralRecommender):
    """A RecBole "traditional" model: scores come from the training data, nothing is learned.

    RecBole gives ``ModelType.TRADITIONAL`` models its ``TraditionalTrainer`` (one pass over the training
    data, then validation and test). Here that pass does nothing: ``calculate_loss`` returns a zero loss on
    a dummy parameter (so the optimiser has something to hold and every step leaves it at zero).
    Subclasses implement ``score_users(users)`` -> len(users) x n_items scores; ``predict`` scores the
    distinct users of a batch once and gathers the pairs.
    """

    type = ModelType.TRADITIONAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def calculate_loss(self, interaction):
        return (self.dummy * 0.0).sum()

    def score_users(self, users):
        raise NotImplementedError

    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        distinct, position = torch.unique(users, return_inverse=True)
        return self.score_users(distinct)[position, items]

    def full_sort_predict(self, interaction):
        return self.score_users(interaction[self.USER_ID]).reshape(-1)
