"""The one run path: config -> data -> model -> trainer -> fit -> test, and the Python API on top of it.

Every tool builds its runs here: the CLI (:func:`run_recbole_spectral`), HyperTuning
(:func:`objective_function`), ``compare``, the tuning trials (hyperopt and Ray), distributed ranks,
:func:`load_data_and_model` and the benchmark scripts. Mirrors ``recbole.quick_start`` without importing
it (it imports ray at import time), and routes every model (plugin or RecBole) through the plugin's
Config, Dataset choice and trainer (weights-only checkpoints, cold-start metrics, model hooks).
"""
import contextlib
import logging
import os
import re
import time
import warnings
from logging import getLogger

from recbole.utils import init_logger, init_seed, set_color

from recbole_spectral.checkpoint import read_checkpoint
from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset, data_preparation, ensure_dataset_files
from recbole_spectral.errors import ConfigError, SpectralError
from recbole_spectral.trainer import trainer_class
from recbole_spectral.training_state import read_training_state, restore_training_state, save_training_state


# library warnings every run printed that say nothing about the run: (message start, category, module)
KNOWN_HARMLESS_WARNINGS = (
    # torch marks CSR tensors as beta; the plugin's graph operators use them on purpose
    ("Sparse CSR tensor support is in beta state", UserWarning, r"recbole_spectral\."),
    # torch asks code to opt in or out of sparse invariant checks; the plugin keeps torch's default (off)
    ("Sparse invariant checks are implicitly disabled", UserWarning, r"recbole_spectral\."),
    # RecBole 1.2.1's trainer builds the deprecated torch.cuda.amp.GradScaler on every device
    ("`torch.cuda.amp.GradScaler(args...)` is deprecated", FutureWarning, r"recbole\.trainer\.trainer$"),
    # RecBole 1.2.1's Dataset fills NaN with a chained fillna(inplace=True): it still fills under pandas < 3 (pinned)
    ("A value is trying to be set on a copy of a DataFrame or Series through chained assignment",
     FutureWarning, r"recbole\.data\.dataset\.dataset$"),
)


def silence_known_warnings():
    """Ignore exactly the warnings of KNOWN_HARMLESS_WARNINGS (message and module); any other still shows."""
    for message, category, module in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message), category=category, module=module)


class _HeldConsole(logging.Filter):
    """Keeps a console handler's records back (the log file still gets them) until released."""

    def __init__(self, handler):
        super().__init__()
        self.handler, self.records = handler, []
        handler.addFilter(self)

    def filter(self, record):
        self.records.append(record)
        return False


_HELD = []


def hold_console():
    """From here until :func:`release_console`, console log lines wait: a run refused while it loads its data
    or builds its model shows only the refusal."""
    release_console()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            _HELD.append(_HeldConsole(handler))


def release_console(show=True):
    """Print the held console lines (those the handler's level still admits), or drop them (``show=False``)."""
    while _HELD:
        held = _HELD.pop()
        held.handler.removeFilter(held)
        for record in held.records if show else ():
            if record.levelno >= held.handler.level:
                held.handler.handle(record)


@contextlib.contextmanager
def console_held_until_built(finished=True):
    """Drop the held console on a refusal (SpectralError) in the block, so the one-line reason is all that is
    printed; show it before any other error's traceback; release it after the block when it ``finished``
    building the run."""
    try:
        yield
    except SpectralError:
        release_console(show=False)
        raise
    except BaseException:
        release_console()
        raise
    if finished:
        release_console()


def init_logging(config):
    """RecBole's logger, re-initialised for each run (basicConfig ignores later calls otherwise)."""
    release_console()
    silence_known_warnings()
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    init_logger(config)


def start_run(config, log_level=None):
    """Make sure the dataset's files exist and are well-formed (building a shipped one on first use) — so a
    missing or broken dataset fails before a log is opened — then open the log and record the configuration.
    Console lines are held back until :func:`build_run` has loaded the data and built the model."""
    ensure_dataset_files(config)
    init_logging(config)
    if log_level is not None:
        logging.getLogger().setLevel(log_level)
    hold_console()
    getLogger().info(config)
    for note in config.notes:
        getLogger().info(note)


def check_topk(config, dataset):
    """RecBole ranks the top max(topk) items: no more than the dataset has (a one-line refusal, not torch's
    'selected index k out of range' at the first evaluation)."""
    items = dataset.item_num - 1  # id 0 is RecBole's padding item
    largest = max(config["topk"] or [0])
    if largest > items:
        raise ConfigError(f"config key 'topk': {largest} is more than the {items} items of dataset "
                          f"'{config['dataset']}'; expected values <= {items}")


def _is_out_of_memory(err):
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and re.search(r"can't allocate memory|out of memory", str(err), re.I))


def out_of_memory_error(config, dataset, err):
    """One line for a model too large to build: what was asked for and the settings that size it."""
    asked = re.search(r"tried to allocate ([\d.]+) ?(\w+)", str(err), re.I)
    amount = " ".join(asked.groups()) if asked else "more than is free"
    if asked and asked.group(2) == "bytes":
        amount = f"{int(asked.group(1)) / 2 ** 30:,.1f} GiB"
    given = config.external_values()
    sizes = {k: v for k, v in config.final_config_dict.items()
             if k in config.model_keys() and isinstance(v, int) and not isinstance(v, bool) and v > 1}
    mine = {k: v for k, v in sizes.items() if k in given}
    shown = sorted((mine or sizes).items(), key=lambda kv: -kv[1])[:3]
    settings = ", ".join(f"{k}={v}" for k, v in shown)
    return ConfigError(
        f"not enough memory to build model {config['model']} on dataset '{config['dataset']}' ({dataset.user_num - 1} "
        f"users, {dataset.item_num - 1} items): it asked for {amount}; "
        + (f"the size settings you gave: {settings}" if mine else f"its size settings: {settings or 'none'}"))


def full_sort_users_per_batch(config, n_items):
    """Users per full-sort evaluation batch: ``eval_score_budget`` scores (users × items) per batch.

    RecBole puts max(eval_batch_size // n_items, 1) users in a batch; its default 4096 is one user per
    batch on any catalogue of more than 2,048 items. ``eval_score_budget: ~`` keeps RecBole's sizing."""
    budget = config["eval_score_budget"]
    if not budget:
        return max(config["eval_batch_size"] // n_items, 1)
    return max(int(budget) // n_items, 1)


def _size_evaluation(config, dataset):
    modes = config["eval_args"]["mode"]
    modes = modes.values() if isinstance(modes, dict) else [modes]
    if config["eval_score_budget"] and all(m == "full" for m in modes):
        users = full_sort_users_per_batch(config, dataset.item_num)
        config["eval_batch_size"] = users * dataset.item_num
        getLogger().info(f"full-sort evaluation: {users} users x {dataset.item_num} items per batch "
                         f"(eval_score_budget {config['eval_score_budget']})")


def build_data(config, split_seed=None):
    """Dataset and (train, valid, test) dataloaders for ``config``, seeded like RecBole's run_recbole:
    ``split_seed`` seeds dataset building and splitting (default ``config["seed"]``), so runs with different
    seeds can share one split."""
    with console_held_until_built(finished=False):  # the model is built next
        init_seed(config["seed"] if split_seed is None else split_seed, config["reproducibility"])
        dataset = create_dataset(config)
        getLogger().info(dataset)
        check_topk(config, dataset)
        _size_evaluation(config, dataset)
        return dataset, data_preparation(config, dataset)


def build_model(config, train_data, trainer_wrapper=None):
    """Model and trainer for ``config`` on ``train_data``'s dataset, seeded by the run's seed (several models can
    share one dataset this way, as the speed probes do); ``trainer_wrapper`` maps the trainer class to a subclass."""
    with console_held_until_built():
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        try:
            model = config.model_class(config, train_data._dataset).to(config["device"])
        except (MemoryError, RuntimeError) as err:
            if not _is_out_of_memory(err):
                raise
            raise out_of_memory_error(config, train_data._dataset, err) from None
        getLogger().info(model)
        cls = trainer_class(config)
        return model, (trainer_wrapper(cls) if trainer_wrapper else cls)(config, model)


def build_run(config, split_seed=None, trainer_wrapper=None):
    """Dataset, dataloaders, model and trainer for ``config`` (:func:`build_data`, then :func:`build_model`)."""
    dataset, loaders = build_data(config, split_seed)
    model, trainer = build_model(config, loaders[0], trainer_wrapper)
    return dataset, loaders, model, trainer


class _EpochRecord:
    """Trainer mixin: time each training epoch and remember the epoch of the best validation score."""

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        start = time.time()
        loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        self.epoch_times.append(time.time() - start)
        if self.epoch_report is not None:
            shown = sum(loss) if isinstance(loss, tuple) else loss
            self.epoch_report(f"epoch {epoch_idx + 1}/{self.epochs}: train {self.epoch_times[-1]:.1f}s, loss {shown:.4f}")
        return loss


def _recorded(trainer_class_, wrapper=None):
    cls = type(trainer_class_.__name__, (_EpochRecord, trainer_class_), {"epoch_times": None, "epoch_report": None})
    return wrapper(cls) if wrapper else cls


def train_and_test(config, saved=True, verbose=True, callback_fn=None, split_seed=None, trainer_wrapper=None,
                   report=None, state_file=None):
    """Fit with early stopping on the validation metric, then test the best checkpoint.

    Returns RecBole's result dict plus ``best_epoch``, ``epochs_run``, ``epoch_time_s`` (mean),
    ``n_params``, ``model_file`` (the best checkpoint), ``cold_users`` and ``time_before_resume_s`` (wall time
    the run spent in earlier processes, 0 for a run not resumed); ``report(message)`` receives
    progress lines. With ``state_file`` (and ``saved``) the training state is written there after every
    validation and a run that finds one goes on from it exactly (``recbole_spectral.training_state``); the
    file is removed once the run has been tested.
    """
    started = time.time()
    _, (train_data, valid_data, test_data), model, trainer = build_run(
        config, split_seed, lambda cls: _recorded(cls, trainer_wrapper))
    trainer.epoch_times, trainer.epoch_report = [], report
    best = {"epoch": None}
    state_file = state_file if saved else None  # a resumed run needs its best checkpoint on disk
    stopped, before = False, 0.0
    if state_file and os.path.isfile(state_file):
        state = read_training_state(state_file, config)
        before = float(state.get("elapsed_s", 0.0))  # 0 for a state of an older version
        best["epoch"], trainer.epoch_times = restore_training_state(state, trainer, train_data, state_file)
        stopped = trainer.cur_step > trainer.stopping_step or trainer.start_epoch >= trainer.epochs
        if report is not None:
            report(f"resumed from {state_file} at epoch {trainer.start_epoch + 1}" + (" (training had ended)" if stopped else ""))

    def on_valid(epoch_idx, valid_score):
        improved = trainer.cur_step == 0  # RecBole's early_stopping resets cur_step on a new best
        if improved:
            best["epoch"] = epoch_idx + 1
        if report is not None:
            report(f"epoch {epoch_idx + 1}: valid {config['valid_metric']} {valid_score:.4f}" + (" (best)" if improved else ""))
        if state_file:
            save_training_state(state_file, trainer, train_data, best["epoch"], trainer.epoch_times, epoch_idx + 1,
                                before + time.time() - started)
        if callback_fn is not None:
            callback_fn(epoch_idx, valid_score)

    if stopped:  # killed after its last validation: only the test is left
        best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
    else:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"], callback_fn=on_valid,
        )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    if state_file and os.path.isfile(state_file):
        os.remove(state_file)
    logger = getLogger()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    epoch_times = trainer.epoch_times
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "best_epoch": best["epoch"] if best["epoch"] is not None else len(epoch_times),
        "epochs_run": len(epoch_times),
        "epoch_time_s": sum(epoch_times) / len(epoch_times) if epoch_times else 0.0,
        "n_params": sum(p.numel() for p in model.parameters()),
        "model_file": trainer.saved_model_file if saved else None,
        # test users with at most cold_start_threshold training interactions (None without the setting)
        "cold_users": getattr(trainer.evaluator, "last_cold_users", None),
        "time_before_resume_s": before,
    }
    return result, model, trainer


def run_recbole_spectral(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
                         cmd_config_dict=None):
    """Train and test ``model`` on ``dataset``; returns RecBole's ``run_recbole`` dict (and run facts)."""
    config = SpectralConfig(model, dataset, config_file_list, config_dict, cmd_config_dict)
    start_run(config)
    result, _, _ = train_and_test(config, saved=saved)
    return result


def objective_function(config_dict=None, config_file_list=None, saved=True, callback_fn=None):
    """Objective for ``recbole.trainer.HyperTuning`` (and the plugin's tuning trials): one quiet run,
    its result dict including ``model``."""
    config = SpectralConfig(config_dict=config_dict, config_file_list=config_file_list)
    start_run(config, log_level=logging.ERROR)
    result, _, _ = train_and_test(config, saved=saved, verbose=False, callback_fn=callback_fn)
    return {"model": config["model"], **result}


def load_data_and_model(model_file):
    """Rebuild config, model (with the saved weights), dataset and dataloaders from a checkpoint."""
    checkpoint = read_checkpoint(model_file)  # CheckpointError: one line naming the file and what it is not
    saved = checkpoint["config"]
    config = SpectralConfig(saved["model"], saved["dataset"], config_dict=saved["settings"])
    start_run(config)
    dataset, (train_data, valid_data, test_data), model, _ = build_run(config)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
