"""Target-related views of the auxiliary behaviors (MuLe, CIKM'24): split each auxiliary behavior b by
the *training* target interactions T (never validation or test rows):

    also_bought(b) = b ∩ T     the (user, item) pairs of b that the user also bought (MuLe: "target-intersected")
    not_bought(b)  = b \\ T     the pairs of b the user did not buy (MuLe: "target-complemented")

so that b = also_bought(b) + not_bought(b) exactly (geonwooko/MULE, data/preprocess.py). All matrices are
binary scipy CSR (users x items), like ``MultiBehaviorDataset.behavior_matrix``.
"""
import numpy as np
import scipy.sparse as sp

TARGET_VIEWS = ("also_bought", "not_bought")


def _binary(matrix):
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.data[:] = 1.0
    m.eliminate_zeros()
    return m


def also_bought(auxiliary, target):
    """b ∩ T: binary CSR of the pairs present in both matrices."""
    both = _binary(auxiliary).multiply(_binary(target)).tocsr()
    both.eliminate_zeros()
    return _binary(both)


def not_bought(auxiliary, target):
    """b \\ T: binary CSR of the pairs of ``auxiliary`` absent from ``target``."""
    aux = _binary(auxiliary)
    rest = (aux - aux.multiply(_binary(target))).tocsr()
    rest.eliminate_zeros()
    return _binary(rest)


def target_view_matrices(dataset, kinds):
    """[(name, base auxiliary behavior, matrix)] for every kind in ``kinds`` and every auxiliary behavior
    of ``dataset`` (funnel order, kinds in the order given), e.g. ``also_bought:view``."""
    unknown = [k for k in kinds if k not in TARGET_VIEWS]
    if unknown:
        raise ValueError(f"target views must be among {TARGET_VIEWS}, got {unknown}")
    target = dataset.behavior_matrix(dataset.target_behavior)
    split = {"also_bought": also_bought, "not_bought": not_bought}
    return [(f"{kind}:{b}", b, split[kind](dataset.behavior_matrix(b), target))
            for kind in kinds for b in dataset.auxiliary_behaviors]
