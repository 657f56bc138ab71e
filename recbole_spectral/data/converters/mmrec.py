"""Converter for the MMRec layout -> multimodal atomic files (``run_recbole_spectral.py prepare mmrec``).

MMRec layout (the folder users download for amazon-sports/baby/clothing, also used by tiktok)::

    <src>/<name>.inter        TSV with header ``userID itemID rating timestamp x_label`` (ids 0-based;
                              x_label 0/1/2 = train/valid/test; rating/timestamp optional)
    <src>/image_feat.npy      row i = features of itemID i (e.g. 4096-d)
    <src>/text_feat.npy       (e.g. 384-d)
    <src>/<modality>_feat.npy any other modality (e.g. audio_feat.npy)

Output in ``<out>/<name>/`` (``<out>`` defaults to the plugin's data folder):
``<name>.train.inter``/``.valid.inter``/``.test.inter`` split by x_label (user/item tokens = the MMRec ids),
``<name>.<modality>.npy`` float32 (float16/float64 inputs are cast), ``<name>.feature_items.txt`` (line i =
item token i, shared by all modalities), and ``<name>.yaml`` listing the modalities and the benchmark split.
The folder is written under a temporary name and renamed at the end: it is never half-written.
"""
import argparse
import glob
import os
import sys

import numpy as np
import pandas as pd

from recbole_spectral import paths
from recbole_spectral.data.atomic import SPLITS, atomic_folder, write_inter, write_lines
from recbole_spectral.data.features import check_finite, load_feature_matrix
from recbole_spectral.errors import DataError

REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
FEATURE_SUFFIX = "_feat.npy"
MODALITY_ORDER = ("image", "text")  # MMRec's usual modalities first, any others after them by name


def find_inter_file(src, name):
    """``<src>/<name>.inter``, else ``<src>/<folder name>.inter``, else the folder's only ``.inter`` file."""
    for candidate in (os.path.join(src, f"{name}.inter"), os.path.join(src, f"{os.path.basename(os.path.normpath(src))}.inter")):
        if os.path.isfile(candidate):
            return candidate
    found = sorted(glob.glob(os.path.join(src, "*.inter")))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"no MMRec interaction file in {src}: expected {name}.inter (TSV userID itemID rating timestamp x_label)")
    raise DataError(f"several .inter files in {src} ({', '.join(map(os.path.basename, found))}): pass --inter FILE")


def _integer_column(frame, column, path):
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values < 0) | (values != values.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path} line {row + 2}: {column} '{frame[column].iloc[row]}' is not a non-negative integer"
        )
    return values.astype(np.int64)


def read_mmrec_inter(path):
    """The MMRec interactions as a DataFrame with int columns userID, itemID, x_label (+ rating, timestamp)."""
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a tab-separated MMRec file: {str(err).splitlines()[0]}") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: header lacks {', '.join(missing)}; expected tab-separated 'userID itemID rating timestamp x_label'"
        )
    for column in REQUIRED_COLUMNS:
        frame[column] = _integer_column(frame, column, path)
    bad = ~frame["x_label"].isin([0, 1, 2])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path} line {row + 2}: x_label {frame['x_label'].iloc[row]} is outside 0/1/2 (train/valid/test)")
    for column in ("rating", "timestamp"):
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0])
                raise DataError(f"{path} line {row + 2}: {column} '{frame[column].iloc[row]}' is not a number")
            frame[column] = values
    for label, split in enumerate(SPLITS):
        if not (frame["x_label"] == label).any():
            raise DataError(f"{path}: no rows with x_label {label} ({split}); expected train, valid and test rows")
    return frame


def find_feature_files(src):
    """{modality: path} for every ``<modality>_feat.npy`` in ``src`` (image, text, then the others by name)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(src, f"*{FEATURE_SUFFIX}"))):
        modality = os.path.basename(path)[: -len(FEATURE_SUFFIX)]
        if modality:
            found[modality] = path
    if not found:
        raise DataError(f"no feature file in {src}: expected <modality>_feat.npy (e.g. image_feat.npy, text_feat.npy)")
    order = [m for m in MODALITY_ORDER if m in found] + [m for m in found if m not in MODALITY_ORDER]
    return {m: found[m] for m in order}


def _write_inter(frame, path):
    present = [c for c in ("rating", "timestamp") if c in frame.columns]
    renamed = frame.rename(columns={"userID": "user_id", "itemID": "item_id"})
    write_inter(renamed, path, ["user_id", "item_id", *present])


def _yaml_text(name, modalities, src, counts):
    lines = [
        f"# {name}: converted from the MMRec layout in {src} by 'run_recbole_spectral.py prepare mmrec'",
        f"# {counts}",
        f"modalities: [{', '.join(modalities)}]",
        "feature_fill: mean",
        "benchmark_filename: [train, valid, test]",
        "load_col:",
        "    inter: [user_id, item_id]",
    ]
    return "\n".join(lines) + "\n"


def convert(src, name, out=None, inter=None, force=False, log=print):
    """Convert the MMRec folder ``src`` into ``<out>/<name>/``; returns a summary dict."""
    src = os.path.abspath(src)
    if not os.path.isdir(src):
        raise DataError(f"source folder {src} does not exist: expected an MMRec dataset folder")
    out = os.path.abspath(out or str(paths.default_data_dir()))
    target = os.path.join(out, name)
    if os.path.exists(target) and not force:
        raise DataError(f"{target} already exists: pass --force to replace it")
    inter_path = inter or find_inter_file(src, name)
    frame = read_mmrec_inter(inter_path)
    n_items_seen = int(frame["itemID"].max()) + 1

    features = {}
    for modality, path in find_feature_files(src).items():
        array = load_feature_matrix(path)
        if array.shape[0] < n_items_seen:
            raise DataError(
                f"{path} has {array.shape[0]} rows but {os.path.basename(inter_path)} uses itemID "
                f"{n_items_seen - 1}: expected row i = itemID i for every item"
            )
        check_finite(array, path)
        cast = np.asarray(array, dtype=np.float32)
        if not np.isfinite(cast).all():
            raise DataError(f"{path} holds values outside the float32 range: expected finite float32 values")
        features[modality] = (path, cast)

    with atomic_folder(out, name) as work:
        for label, split in enumerate(SPLITS):
            _write_inter(frame[frame["x_label"] == label], os.path.join(work, f"{name}.{split}.inter"))
        rows = {m: a.shape[0] for m, (_, a) in features.items()}
        if len(set(rows.values())) == 1:
            write_lines(os.path.join(work, f"{name}.feature_items.txt"), range(next(iter(rows.values()))))
        else:  # modalities cover different item ranges: one sidecar each
            for modality, count in rows.items():
                write_lines(os.path.join(work, f"{name}.{modality}.items.txt"), range(count))
        for modality, (_, array) in features.items():
            np.save(os.path.join(work, f"{name}.{modality}.npy"), array)
        split_counts = {s: int((frame["x_label"] == i).sum()) for i, s in enumerate(SPLITS)}
        summary = {
            "target": target,
            "users": int(frame["userID"].nunique()),
            "items": int(frame["itemID"].nunique()),
            "splits": split_counts,
            "modalities": {m: tuple(a.shape) for m, (_, a) in features.items()},
            "source_dtypes": {m: str(load_feature_matrix(p).dtype) for m, (p, _) in features.items()},
        }
        counts = (
            f"{summary['users']} users, {summary['items']} items with interactions, "
            + " / ".join(f"{s} {c}" for s, c in split_counts.items())
            + "; " + ", ".join(f"{m} {shape[0]}x{shape[1]}" for m, shape in summary["modalities"].items())
        )
        with open(os.path.join(work, f"{name}.yaml"), "w", encoding="utf-8") as handle:
            handle.write(_yaml_text(name, list(features), src, counts))
    unused = {m: a.shape[0] - n_items_seen for m, (_, a) in features.items() if a.shape[0] > n_items_seen}
    log(f"wrote {target}: {counts}")
    if unused:
        log("feature rows past the largest itemID (items without interactions, unused by RecBole): "
            + ", ".join(f"{m} {c}" for m, c in unused.items()))
    casts = {m: d for m, d in summary["source_dtypes"].items() if d != "float32"}
    if casts:
        log("cast to float32: " + ", ".join(f"{m} ({d})" for m, d in casts.items()))
    return summary


def parser():
    p = argparse.ArgumentParser(
        prog="run_recbole_spectral.py prepare mmrec",
        description="Convert an MMRec dataset folder (<name>.inter, <modality>_feat.npy) into multimodal atomic files.",
    )
    p.add_argument("--src", required=True, help="MMRec folder, e.g. data/sports from the MMRec Google Drive")
    p.add_argument("--name", required=True, help="dataset name to write, e.g. amazon-sports")
    p.add_argument("--out", default=None, help="data folder (default: $RECBOLE_SPECTRAL_DATA or dataset_atomic/)")
    p.add_argument("--inter", default=None, help="interaction file when the folder holds several .inter files")
    p.add_argument("--force", action="store_true", help="replace an existing <out>/<name>/")
    return p


def prepare_cli(argv):
    args = parser().parse_args(argv)
    convert(args.src, args.name, out=args.out, inter=args.inter, force=args.force,
            log=lambda line: print(line, file=sys.stdout))
    return 0
