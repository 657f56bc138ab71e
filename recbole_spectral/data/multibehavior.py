"""Multi-behavior datasets: auxiliary behaviors as matrices, only the target behavior as interactions.

Atomic files (``benchmark_filename: [train, valid, test]``)::

    <name>.train.inter   user_id:token  item_id:token  behavior:token  [timestamp:float]   all behaviors
    <name>.valid.inter   same columns, target-behavior rows only
    <name>.test.inter    same columns, target-behavior rows only

The dataset's YAML names the behaviors in funnel order and the target, e.g.
``behaviors: [view, cart, buy]`` and ``target_behavior: buy`` (column name: ``BEHAVIOR_FIELD``,
default ``behavior``). RecBole remaps every row, so all behaviors share one user/item id space; then,
before :meth:`build`, the auxiliary rows leave ``inter_feat`` and are kept as sparse matrices. What
RecBole splits, samples negatives from, trains and evaluates on is therefore the target behavior only,
and every RecBole general model runs unchanged on exactly the target-only training data.

Options (dataset YAML or any config layer; defaults in the dataset YAML):

- ``train_on_all_behaviors`` (bool): the "all behaviors" baseline. The training interactions become the
  union of the training target rows and every auxiliary (user, item) pair; validation and test stay on the
  target, and :func:`recbole_spectral.data.data_preparation` restricts the full-ranking masks (and the
  evaluation samplers' used items) to the user's *training target* interactions: auxiliary interactions
  are never masked (the field's protocol).
- ``drop_behaviors`` (list): auxiliary behaviors removed entirely (they leave ``behaviors``).
- ``noise_behaviors`` (list or ~ for all auxiliary behaviors), ``noise_remove_ratio`` (r in [0, 1]:
  remove round(r * n) of a behavior's n pairs, chosen uniformly), ``noise_add_ratio`` (a >= 0: add
  round(a * n) uniformly random (user, item) pairs not already in that behavior), ``noise_seed``.
  Removal happens before addition, both on the de-duplicated pairs; each behavior draws from its own
  stream seeded by (noise_seed, position of the behavior in ``behaviors``), so results do not depend on
  which other behaviors are noised. The target behavior is never touched.

Duplicates: auxiliary behaviors are stored as binary matrices (duplicate pairs within a behavior are
counted and logged). With ``rm_dup_inter`` set, duplicate target rows are removed *within* each split
(never because an auxiliary row has the same pair). RecBole's own filtering does not run on
pre-split benchmark files.
"""
import numpy as np
import pandas as pd
import scipy.sparse as sp
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.dataset import Dataset
from recbole.utils import set_color

from recbole_spectral.data.atomic import SPLITS
from recbole_spectral.errors import ConfigError, DataError


def behavior_options(config):
    """The multi-behavior options of ``config``, checked (one-line ConfigError naming the key) and normalised;
    read from the configuration alone, so a run checks them before it loads any data."""
    name = config["dataset"]
    behaviors = [str(b) for b in (config["behaviors"] or [])]
    target = None if config["target_behavior"] is None else str(config["target_behavior"])
    if not behaviors or target is None:
        raise ConfigError(f"dataset '{name}': a multi-behavior dataset needs both 'behaviors' and 'target_behavior'")
    if len(set(behaviors)) != len(behaviors):
        raise ConfigError(f"dataset '{name}': config key 'behaviors' lists a behavior twice: {behaviors}")
    if target not in behaviors:
        raise ConfigError(f"dataset '{name}': config key 'target_behavior' ({target}) is not in 'behaviors' {behaviors}")
    if config["benchmark_filename"] is None or len(config["benchmark_filename"]) != 3:
        raise ConfigError(
            f"dataset '{name}': config key 'benchmark_filename' must be [train, valid, test] for a "
            "multi-behavior dataset (valid/test files hold target rows only)"
        )
    drop = [str(b) for b in (config["drop_behaviors"] or [])]
    for b in drop:
        if b == target or b not in behaviors:
            raise ConfigError(
                f"dataset '{name}': config key 'drop_behaviors' names '{b}'; expected auxiliary behaviors "
                f"from {[x for x in behaviors if x != target]}"
            )
    kept = [b for b in behaviors if b not in drop]
    auxiliary = [b for b in kept if b != target]
    noise = config["noise_behaviors"]
    noise = list(auxiliary) if noise is None else [str(b) for b in noise]
    for b in noise:
        if b not in auxiliary:
            raise ConfigError(
                f"dataset '{name}': config key 'noise_behaviors' names '{b}'; expected kept auxiliary "
                f"behaviors from {auxiliary}"
            )
    add, remove = float(config["noise_add_ratio"] or 0.0), float(config["noise_remove_ratio"] or 0.0)
    if add < 0:
        raise ConfigError(f"config key 'noise_add_ratio': expected a ratio >= 0, got {add}")
    if not 0 <= remove <= 1:
        raise ConfigError(f"config key 'noise_remove_ratio': expected a ratio in [0, 1], got {remove}")
    seed = config["noise_seed"]
    return {"configured_behaviors": behaviors, "target_behavior": target, "drop_behaviors": drop, "behaviors": kept,
            "auxiliary_behaviors": auxiliary, "noise_behaviors": noise, "noise_add_ratio": add,
            "noise_remove_ratio": remove, "noise_seed": int(config["seed"] if seed is None else seed)}


class MultiBehaviorDataset(Dataset):
    """RecBole :class:`Dataset` whose interactions are the target behavior; auxiliary ones are matrices.

    Attributes (carried by every copy RecBole makes in :meth:`build`):
        behaviors (list of str): behaviors in funnel order, the target last as configured, minus dropped ones.
        target_behavior (str): the behavior RecBole trains and evaluates on.
        auxiliary_behaviors (list of str): ``behaviors`` without the target.
        train_on_all_behaviors (bool): whether training interactions are the union of all behaviors.
    """

    def __init__(self, config):
        self.behavior_field = config["BEHAVIOR_FIELD"] or "behavior"
        options = behavior_options(config)
        self.configured_behaviors, self.target_behavior = options["configured_behaviors"], options["target_behavior"]
        self.drop_behaviors, self.behaviors = options["drop_behaviors"], options["behaviors"]
        self.auxiliary_behaviors, self.noise_behaviors = options["auxiliary_behaviors"], options["noise_behaviors"]
        self.noise_add_ratio, self.noise_remove_ratio = options["noise_add_ratio"], options["noise_remove_ratio"]
        self.noise_seed = options["noise_seed"]
        self.train_on_all_behaviors = bool(config["train_on_all_behaviors"])
        super().__init__(config)

    # -- loading -------------------------------------------------------------------------------
    def _data_processing(self):
        self._check_behavior_rows()
        super()._data_processing()  # remaps users/items (all behaviors: one id space) and behavior tokens
        self._separate_behaviors()

    def _file(self, part):
        return f"{self.dataset_path}/{self.dataset_name}.{self.benchmark_filename_list[part]}.inter"

    def _check_behavior_rows(self):
        """Raw tokens: every row's behavior is known, valid/test are target-only, no split is empty."""
        field, target = self.behavior_field, self.target_behavior
        if field not in self.inter_feat:
            raise DataError(
                f"{self._file(0)}: no '{field}:token' column loaded; the .inter files need it and "
                f"load_col must list it (config key 'BEHAVIOR_FIELD' names it)"
            )
        values = self.inter_feat[field].astype(str).to_numpy()
        empty = self.inter_feat[field].isna().to_numpy()
        bounds = np.cumsum([0] + list(self.file_size_list))
        for part in range(3):
            rows = values[bounds[part]:bounds[part + 1]]
            allowed = self.configured_behaviors if part == 0 else [target]
            bad = np.flatnonzero(~np.isin(rows, allowed))
            if len(bad) and empty[bounds[part] + bad[0]]:  # +2 below: one header line, 1-based lines
                raise DataError(f"{self._file(part)} line {bad[0] + 2}: no behavior value (fewer columns than the header?)")
            if len(bad):
                raise DataError(
                    f"{self._file(part)} line {bad[0] + 2}: behavior '{rows[bad[0]]}' not allowed here; "
                    f"expected one of {allowed}" + (" (config key 'behaviors')" if part == 0 else " (target rows only)")
                )
            if part > 0 and len(rows) == 0:
                raise DataError(f"{self._file(part)}: empty target split (no '{target}' rows)")
        train_rows = values[: bounds[1]]
        for b in self.configured_behaviors:
            if not np.any(train_rows == b):
                what = "empty target split" if b == target else f"behavior '{b}' named in config key 'behaviors'"
                raise DataError(f"{self._file(0)}: {what}: no '{b}' rows")

    def _separate_behaviors(self):
        """Keep target rows in ``inter_feat``; auxiliary rows become (user x item) matrices."""
        uid, iid, field = self.uid_field, self.iid_field, self.behavior_field
        feat = self.inter_feat
        tokens = np.asarray(self.field2id_token[field])[feat[field].to_numpy()]
        bounds = np.cumsum([0] + list(self.file_size_list))
        part = np.searchsorted(bounds[1:], np.arange(len(feat)), side="right")
        keep = self.config["rm_dup_inter"]
        log = self.logger

        self._behavior_matrices = {}
        self.behavior_counts = {}
        for position, behavior in enumerate(self.configured_behaviors):
            if behavior == self.target_behavior:
                continue
            rows = feat.loc[(part == 0) & (tokens == behavior), [uid, iid]]
            pairs = rows.drop_duplicates()
            if len(pairs) < len(rows):
                log.info(f"[{behavior}] removed {len(rows) - len(pairs)} duplicate (user, item) rows")
            self.behavior_counts[behavior] = len(pairs)
            if behavior in self.drop_behaviors:
                log.info(set_color(f"[{behavior}] dropped ({len(pairs)} pairs)", "yellow") + " (drop_behaviors)")
                continue
            u, i = pairs[uid].to_numpy(), pairs[iid].to_numpy()
            if behavior in self.noise_behaviors and (self.noise_add_ratio or self.noise_remove_ratio):
                u, i = self._add_noise(behavior, position, u, i)
            self._behavior_matrices[behavior] = self._matrix(u, i)

        parts = []
        for p in range(3):
            rows = feat[(part == p) & (tokens == self.target_behavior)]
            if keep is not None:
                deduped = rows.drop_duplicates(subset=[uid, iid], keep=keep)
                if len(deduped) < len(rows):
                    log.info(
                        f"[{self.target_behavior}] {SPLITS[p]}: removed {len(rows) - len(deduped)} duplicate "
                        f"target rows (rm_dup_inter={keep}; auxiliary rows never count)"
                    )
                rows = deduped
            parts.append(rows)
        train = parts[0]
        self._behavior_matrices[self.target_behavior] = self._matrix(train[uid].to_numpy(), train[iid].to_numpy())
        self.behavior_counts[self.target_behavior] = len(train)
        log.info(
            "behaviors: " + ", ".join(f"{b} {self._behavior_matrices[b].nnz}" for b in self.behaviors)
            + f"; target rows valid {len(parts[1])}, test {len(parts[2])}"
        )

        if self.train_on_all_behaviors:
            parts[0] = self._union_rows(train)
            log.info(
                f"train_on_all_behaviors: {len(parts[0])} training interactions "
                f"({len(train)} target + {len(parts[0]) - len(train)} auxiliary-only pairs)"
            )
        self.inter_feat = pd.concat(parts, ignore_index=True)
        self.file_size_list = [len(p) for p in parts]
        self._del_col(self.inter_feat, field)

    def _matrix(self, u, i):
        data = np.ones(len(u), dtype=np.float32)
        m = sp.csr_matrix((data, (u, i)), shape=(self.user_num, self.item_num), dtype=np.float32)
        m.data[:] = 1.0  # duplicate target rows (rm_dup_inter unset) still give a binary matrix
        return m

    def _add_noise(self, behavior, position, u, i):
        rng = np.random.default_rng([self.noise_seed, position])
        n = len(u)
        removed = int(round(self.noise_remove_ratio * n))
        if removed:
            kept = np.sort(rng.choice(n, size=n - removed, replace=False))
            u, i = u[kept], i[kept]
        added = int(round(self.noise_add_ratio * n))
        capacity = (self.user_num - 1) * (self.item_num - 1) - len(u)
        if added > capacity:
            raise ConfigError(f"config key 'noise_add_ratio': cannot add {added} new '{behavior}' pairs; only {capacity} free")
        existing = set((u.astype(np.int64) * self.item_num + i).tolist())
        new = []
        while len(new) < added:
            cu = rng.integers(1, self.user_num, size=2 * (added - len(new)) + 16)
            ci = rng.integers(1, self.item_num, size=len(cu))
            for key in (cu.astype(np.int64) * self.item_num + ci).tolist():
                if key not in existing:
                    existing.add(key)
                    new.append(key)
                    if len(new) == added:
                        break
        new = np.asarray(new, dtype=np.int64)
        self.logger.info(
            f"[{behavior}] noise (seed {self.noise_seed}): removed {removed} of {n} pairs, added {added} random pairs"
        )
        return np.concatenate([u, new // self.item_num]), np.concatenate([i, new % self.item_num])

    def _union_rows(self, train):
        """Training target rows plus one row per auxiliary pair that is not a training target pair."""
        uid, iid = self.uid_field, self.iid_field
        extra = (self.all_behaviors_matrix() - self._behavior_matrices[self.target_behavior]).tocoo()
        extra.eliminate_zeros()
        aux = pd.DataFrame({uid: extra.row.astype(train[uid].dtype), iid: extra.col.astype(train[iid].dtype)})
        for column in train.columns:
            if column not in (uid, iid):
                aux[column] = np.zeros(len(aux), dtype=train[column].dtype)
        return pd.concat([train, aux[train.columns]], ignore_index=True)

    # -- the contract models use ---------------------------------------------------------------
    def behavior_matrix(self, behavior):
        """Binary (user_num x item_num) float32 CSR: the training target rows, or an auxiliary behavior's pairs."""
        if behavior not in self._behavior_matrices:
            raise DataError(f"dataset '{self.dataset_name}': no behavior '{behavior}'; it has {self.behaviors}")
        return self._behavior_matrices[behavior].copy()

    def all_behaviors_matrix(self):
        """Binary CSR: union of every kept auxiliary behavior and the training target interactions."""
        union = sum((self._behavior_matrices[b] for b in self.behaviors), sp.csr_matrix((self.user_num, self.item_num), dtype=np.float32))
        union = union.tocsr()
        union.data[:] = 1.0
        return union.astype(np.float32)

    def build(self):
        if self.train_on_all_behaviors:
            self.logger.warning(
                "train_on_all_behaviors: evaluation must mask training target interactions only; build the "
                "dataloaders with recbole_spectral.data.data_preparation (RecBole's own also masks auxiliary pairs)"
            )
        return super().build()

    # -- evaluation masks ----------------------------------------------------------------------
    def restrict_eval_history(self, train_data, valid_data, test_data):
        """With ``train_on_all_behaviors``, mask only training *target* interactions when evaluating.

        RecBole derives evaluation masks (and evaluation negatives) from everything in the training split,
        which here includes auxiliary pairs. This rebuilds the valid/test phases' used items exactly as
        RecBole does (train, then + valid, then + test) from the target rows alone.
        """
        if not self.train_on_all_behaviors:
            return
        target = self._behavior_matrices[self.target_behavior]
        used = [set(target.indices[target.indptr[u]:target.indptr[u + 1]].tolist()) for u in range(self.user_num)]
        for loader in (valid_data, test_data):
            inter = loader._dataset.inter_feat
            for u, i in zip(inter[self.uid_field].numpy().tolist(), inter[self.iid_field].numpy().tolist()):
                used[u].add(i)
            phase_used = np.empty(self.user_num, dtype=object)
            phase_used[:] = [set(s) for s in used]
            if loader._sampler is not None:
                loader._sampler.used_ids = phase_used
            if isinstance(loader, FullSortEvalDataLoader) and not loader.is_sequential:
                for u in loader.uid_list.tolist():
                    loader._set_user_property(u, phase_used[u], set(loader.uid2positive_item[u].tolist()))

    def __str__(self):
        info = [super().__str__()]
        info.append(
            set_color("Behaviors", "blue") + f": {self.behaviors} (target {self.target_behavior}); pairs "
            + ", ".join(f"{b}: {m.nnz}" for b, m in self._behavior_matrices.items())
            + (" ; training on all behaviors" if self.train_on_all_behaviors else "")
        )
        return "\n".join(info)
