"""Writing atomic-file folders: the one writer every converter and on-demand builder uses.

A dataset folder ``<data_dir>/<name>/`` is written under a temporary name next to it and renamed at the
end, so a reader (or a concurrent builder) never sees a half-written dataset. Nothing here imports
RecBole's Dataset: converters stay light.
"""
import errno
import os
import shutil
import tempfile
from contextlib import contextmanager

from recbole_spectral.errors import DataError

SPLITS = ("train", "valid", "test")
# RecBole atomic header of each column this project writes
FIELD_TYPES = {
    "user_id": "user_id:token", "item_id": "item_id:token", "behavior": "behavior:token",
    "rating": "rating:float", "timestamp": "timestamp:float",
}


@contextmanager
def atomic_folder(data_dir, name, if_exists="replace"):
    """Yield a temporary folder; on success it becomes ``<data_dir>/<name>``.

    ``if_exists``: ``replace`` an existing folder, or ``keep`` it (another process built it meanwhile:
    the new files are discarded). On error the temporary folder is removed and nothing changes.
    """
    final = os.path.join(data_dir, name)
    try:
        os.makedirs(data_dir, exist_ok=True)
        work = tempfile.mkdtemp(prefix=f".{name}-", dir=data_dir)
    except OSError as err:
        raise write_error(final, data_dir, err) from None
    os.chmod(work, 0o755)  # mkdtemp makes it private; the dataset folder is shared
    try:
        yield work
        if os.path.isdir(final):
            if if_exists == "keep":
                shutil.rmtree(work)
                return
            shutil.rmtree(final)
        os.replace(work, final)
    except OSError as err:
        shutil.rmtree(work, ignore_errors=True)
        raise write_error(final, data_dir, err) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def write_error(final, data_dir, err):
    """One line for a dataset folder that could not be written (full disk, no permission); nothing of it is left."""
    short_write = err.errno is None and "requested and" in str(err)  # numpy's tofile on a full disk
    if short_write or err.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            room = f"; {shutil.disk_usage(data_dir).free / 2 ** 20:.1f} MiB are free without it"
        except OSError:
            room = ""
        reason = f"the disk holding {data_dir} ran out of space{room}"
    else:
        reason = err.strerror or str(err)
    return DataError(f"{final}: could not be written: {reason}; nothing half-written was left "
                     "(free some space or choose another --out)")


def write_inter(frame, path, columns):
    """``frame[columns]`` as a RecBole .inter file (TSV, typed header from FIELD_TYPES, ``\\n`` lines)."""
    frame[list(columns)].to_csv(path, sep="\t", index=False, header=[FIELD_TYPES[c] for c in columns],
                                lineterminator="\n")


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as out:
        out.write("".join(f"{line}\n" for line in lines))


def write_multibehavior_folder(data_dir, name, splits, behaviors, target_behavior, users=None, items=None,
                               yaml_text=None):
    """Write ``<data_dir>/<name>/``: ``<name>.{train,valid,test}.inter`` (all behaviors in train, the target
    only in valid/test), ``.user``/``.item`` listing the whole id space when given, and ``<name>.yaml``.

    ``splits`` maps train/valid/test to DataFrames with columns user_id, item_id, behavior (and optionally
    timestamp); tokens are written as given. Only an earlier conversion is ever replaced.
    """
    final = os.path.join(data_dir, name)
    if os.path.isdir(final) and os.listdir(final) and not os.path.isfile(os.path.join(final, f"{name}.train.inter")):
        raise DataError(f"{final}: exists and holds no {name}.train.inter; refusing to replace it (choose another --name/--out)")
    for split in SPLITS:
        frame = splits[split]
        unknown = set(frame["behavior"]) - set(behaviors)
        if unknown:
            raise DataError(f"{name}.{split}.inter: behaviors {sorted(unknown)} are not in {list(behaviors)}")
        if split != "train" and not (frame["behavior"] == target_behavior).all():
            raise DataError(f"{name}.{split}.inter: only '{target_behavior}' rows belong in valid/test")
    with atomic_folder(data_dir, name) as work:
        for split in SPLITS:
            frame = splits[split]
            columns = ["user_id", "item_id", "behavior"] + (["timestamp"] if "timestamp" in frame else [])
            write_inter(frame, os.path.join(work, f"{name}.{split}.inter"), columns)
        for suffix, field, ids in (("user", "user_id", users), ("item", "item_id", items)):
            if ids is not None:
                write_lines(os.path.join(work, f"{name}.{suffix}"), [f"{field}:token", *ids])
        if yaml_text is not None:
            with open(os.path.join(work, f"{name}.yaml"), "w") as out:
                out.write(yaml_text)
    return final
