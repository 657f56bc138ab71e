"""Converter for the CRGCN-style multi-behavior layout (CRGCN, MB-CGCN, MuLe and most public code).

Input folder::

    count.txt          JSON {"user": N, "item": M}
    <behavior>.txt     one "user item" pair per line (space/tab separated), ids 1-based; CRLF tolerated
    buy.txt            the training target interactions (``--target`` names another)
    validation.txt     optional held-out target interactions
    test.txt           held-out target interactions

Output ``<out>/<name>/``: ``<name>.{train,valid,test}.inter`` (see :mod:`recbole_spectral.data.multibehavior`),
``<name>.user``/``<name>.item`` listing every id 1..N / 1..M (so the id space is exactly count.txt's, even for
ids without interactions), and ``<name>.yaml`` with the behaviors in funnel order and the target.
Tokens are the original ids. Without ``validation.txt``, one random training target row of every user
with at least two is held out for validation (``numpy.random.default_rng(seed)``, users in ascending id
order, a uniform choice among that user's rows); users with one training target keep it.

Python: :func:`convert_crgcn`. Command line: ``run_recbole_spectral.py prepare crgcn --src <folder>
--name <name> [--out <data dir>] [--seed 2020] [--target buy] [--behaviors view,cart,buy]``.
"""
import argparse
import json
import os
from logging import getLogger

import numpy as np
import pandas as pd

from recbole_spectral import paths
from recbole_spectral.data.atomic import write_multibehavior_folder
from recbole_spectral.errors import DataError

# funnel position of behavior names used by the public datasets; unknown names go between click and buy
FUNNEL = {"view": 0, "click": 0, "pv": 0, "collect": 1, "fav": 1, "favorite": 1, "cart": 2, "buy": 3}
SPLIT_FILES = {"count.txt", "validation.txt", "test.txt"}
DEFAULT_SEED = 2020


def read_count(src):
    path = os.path.join(src, "count.txt")
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (expected JSON {{\"user\": N, \"item\": M}})")
    try:
        count = json.loads(open(path, encoding="utf-8").read())
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    sizes = []
    for key in ("user", "item"):
        value = count.get(key) if isinstance(count, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise DataError(f"{path}: key '{key}' must be a positive integer, got {value!r}")
        sizes.append(value)
    return tuple(sizes)


def read_pairs(path, n_users, n_items):
    """(n, 2) int64 array of 1-based (user, item) ids; blank lines skipped; one-line errors name the line."""
    try:  # fast path; whitespace separation also strips CRLF line ends
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.int64, skip_blank_lines=True, engine="c")
        pairs = frame.to_numpy()
        ok = pairs.ndim == 2 and pairs.shape[1] == 2
    except pd.errors.EmptyDataError:
        pairs, ok = np.zeros((0, 2), dtype=np.int64), True
    except (ValueError, OverflowError, pd.errors.ParserError):
        ok = False
    if not ok:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        for number, line in enumerate(lines, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 2 or not all(t.lstrip("-").isdigit() for t in tokens):
                raise DataError(f"{path} line {number}: expected two integer ids 'user item', got {line.strip()!r}")
        raise DataError(f"{path}: could not parse as 'user item' pairs")
    for column, (kind, size) in enumerate((("user", n_users), ("item", n_items))):
        bad = np.flatnonzero((pairs[:, column] < 1) | (pairs[:, column] > size))
        if len(bad):
            with open(path, encoding="utf-8") as handle:
                number = [k for k, line in enumerate(handle.read().splitlines(), start=1) if line.strip()][bad[0]]
            raise DataError(
                f"{path} line {number}: {kind} id {pairs[bad[0], column]} outside 1..{size} (count.txt)"
            )
    return pairs


def behavior_order(names, target):
    """Funnel order (view/click < collect < cart < buy), unknown auxiliary names alphabetically before the target."""
    aux = sorted((n for n in names if n != target), key=lambda n: (FUNNEL.get(n, 2.5), n))
    return aux + [target]


def hold_out_validation(train, seed):
    """Split one random row per user with >= 2 rows off ``train`` (rows in file order). Returns (train, valid)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(train[:, 0], kind="stable")
    users, starts, counts = np.unique(train[order, 0], return_index=True, return_counts=True)
    eligible = counts >= 2
    offsets = rng.integers(0, counts[eligible])
    chosen = order[starts[eligible] + offsets]
    mask = np.zeros(len(train), dtype=bool)
    mask[chosen] = True
    return train[~mask], train[np.sort(chosen)]


def _frame(pairs, behavior):
    return pd.DataFrame({"user_id": pairs[:, 0].astype(str), "item_id": pairs[:, 1].astype(str), "behavior": behavior})


def convert_crgcn(src, name=None, out=None, seed=DEFAULT_SEED, target="buy", behaviors=None):
    """Convert ``src`` (CRGCN layout) into atomic files in ``<out>/<name>/``; returns a summary dict."""
    src = os.path.abspath(src)
    if not os.path.isdir(src):
        raise DataError(f"{src}: not a folder (expected count.txt, <behavior>.txt, test.txt)")
    name = name or os.path.basename(src.rstrip(os.sep))
    out = str(out or paths.default_data_dir())
    n_users, n_items = read_count(src)
    found = sorted(f[:-4] for f in os.listdir(src) if f.endswith(".txt") and f not in SPLIT_FILES)
    if target not in found:
        raise DataError(
            f"{os.path.join(src, target + '.txt')}: target behavior file missing (behavior files: {found or 'none'})"
        )
    if behaviors:
        for b in behaviors:
            if b not in found:
                raise DataError(f"{os.path.join(src, b + '.txt')}: behavior '{b}' (from --behaviors) has no file")
        if target not in behaviors:
            behaviors = list(behaviors) + [target]
        behaviors = [b for b in behaviors if b != target] + [target]
    else:
        behaviors = behavior_order(found, target)
    test_path = os.path.join(src, "test.txt")
    if not os.path.isfile(test_path):
        raise DataError(f"{test_path}: missing (held-out target interactions)")

    rows = {}
    for b in behaviors:
        path = os.path.join(src, f"{b}.txt")
        rows[b] = read_pairs(path, n_users, n_items)
        if len(rows[b]) == 0:
            what = "empty target split" if b == target else f"behavior '{b}' has no rows"
            raise DataError(f"{path}: {what}")
    target_rows = len(rows[target])
    valid_path = os.path.join(src, "validation.txt")
    if os.path.isfile(valid_path):
        valid = read_pairs(valid_path, n_users, n_items)
        validation = f"{os.path.basename(valid_path)} ({len(valid)} rows)"
    else:
        rows[target], valid = hold_out_validation(rows[target], seed)
        validation = f"held out 1 random '{target}' row per user with >= 2 (seed {seed}): {len(valid)} rows"
    test = read_pairs(test_path, n_users, n_items)
    for path, split in ((valid_path, valid), (test_path, test)):
        if len(split) == 0:
            raise DataError(f"{path}: empty target split")

    splits = {
        "train": pd.concat([_frame(rows[b], b) for b in behaviors], ignore_index=True),
        "valid": _frame(valid, target),
        "test": _frame(test, target),
    }
    counts = {b: len(rows[b]) for b in behaviors}
    counts[target] = target_rows
    yaml_text = dataset_yaml(name, src, seed, behaviors, target, counts, validation, len(rows[target]), len(test),
                             n_users, n_items)
    folder = write_multibehavior_folder(out, name, splits, behaviors, target, range(1, n_users + 1), range(1, n_items + 1),
                                yaml_text)
    summary = {
        "name": name, "folder": folder, "users": n_users, "items": n_items, "behaviors": behaviors,
        "target_behavior": target, "rows": counts, "train_target": len(rows[target]), "valid": len(valid),
        "test": len(test), "validation": validation,
    }
    getLogger().info(f"converted {src} -> {folder}: {summary}")
    return summary


def dataset_yaml(name, src, seed, behaviors, target, counts, validation, train_target, test, n_users, n_items):
    rows = ", ".join(f"{b} {counts[b]}" for b in behaviors)
    return f"""# {name}: converted from the CRGCN layout in {src}
# by recbole_spectral.data.converters.crgcn (run_recbole_spectral.py prepare crgcn; seed {seed}).
# count.txt: {n_users} users, {n_items} items (the .user/.item files list every id)
# rows: {rows} (target before any hold-out)
# validation: {validation}; training target rows {train_target}; test {test}
behaviors: [{", ".join(behaviors)}]     # funnel order, target last
target_behavior: {target}
BEHAVIOR_FIELD: behavior
benchmark_filename: [train, valid, test]  # valid/test hold target rows only
load_col:
  inter: [user_id, item_id, behavior]
  user: [user_id]
  item: [item_id]
rm_dup_inter: first                     # per behavior and split; an auxiliary row never removes a target row

# --- options of MultiBehaviorDataset (recbole_spectral/data/multibehavior.py) ---
train_on_all_behaviors: False           # True: train on the union of all behaviors (evaluation stays on
                                        # the target; only training target interactions are masked)
drop_behaviors: []                      # auxiliary behaviors removed entirely
noise_behaviors: ~                      # auxiliary behaviors the noise options apply to (~ = all)
noise_add_ratio: 0.0                    # add round(r * n) uniformly random (user, item) pairs to each
noise_remove_ratio: 0.0                 # remove round(r * n) of its n pairs (before adding)
noise_seed: ~                           # ~ = the run's seed; each behavior has its own stream

# evaluation protocol of the field: full ranking, HR/NDCG@10/20, early stopping on validation HR@10
eval_args:
  mode: full
metrics: [Hit, NDCG]
topk: [10, 20]
valid_metric: Hit@10
"""


def prepare_cli(argv):
    parser = argparse.ArgumentParser(
        prog="run_recbole_spectral.py prepare crgcn",
        description="Convert a CRGCN-layout folder (count.txt, <behavior>.txt, [validation.txt], test.txt) "
                    "into multi-behavior atomic files and their dataset YAML.",
    )
    parser.add_argument("--src", required=True, help="folder with count.txt, <behavior>.txt, test.txt")
    parser.add_argument("--name", default=None, help="dataset name (default: the folder's name)")
    parser.add_argument("--out", default=None, help="data folder (default: $RECBOLE_SPECTRAL_DATA or dataset_atomic/)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"validation hold-out seed (default {DEFAULT_SEED})")
    parser.add_argument("--target", default="buy", help="target behavior (default buy)")
    parser.add_argument("--behaviors", default=None, help="comma-separated funnel order (default: view<collect<cart<buy)")
    args = parser.parse_args(argv)
    behaviors = [b.strip() for b in args.behaviors.split(",") if b.strip()] if args.behaviors else None
    summary = convert_crgcn(args.src, args.name, args.out, args.seed, args.target, behaviors)
    rows = ", ".join(f"{b} {n}" for b, n in summary["rows"].items())
    print(
        f"wrote {summary['folder']}: {summary['users']} users, {summary['items']} items; {rows}; "
        f"training target {summary['train_target']}, valid {summary['valid']} ({summary['validation']}), "
        f"test {summary['test']}"
    )
    return 0
