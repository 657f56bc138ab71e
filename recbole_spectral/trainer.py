"""The trainer a run gets: the model's own ``trainer_class`` (else RecBole's choice for its type) with
the plugin's mixins: weights-only checkpoints, cold-start metrics and the model hooks."""
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_spectral.checkpoint import SafeCheckpointMixin
from recbole_spectral.cold_start import ColdStartMixin


class ModelHooksMixin:
    """Calls what a plugin model declares (``recbole_spectral.model.base``): ``on_train_epoch_start``
    before every training epoch, ``prepare_training_batch`` on every training batch, and ``clear_cache``
    after every optimiser step."""

    def __init__(self, config, model):
        super().__init__(config, model)
        clear = getattr(model, "clear_cache", None)
        if clear is not None and getattr(self, "optimizer", None) is not None:
            self.optimizer.register_step_post_hook(lambda *args, **kwargs: clear())

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        hook = getattr(self.model, "on_train_epoch_start", None)
        if hook is not None:
            hook(epoch_idx, train_data)
        prepare = getattr(self.model, "prepare_training_batch", None)
        if prepare is not None and not args and kwargs.get("loss_func") is None:
            kwargs["loss_func"] = lambda interaction: self.model.calculate_loss(prepare(interaction))
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)


_TRAINERS = {}


def trainer_class(config):
    """The trainer class for ``config``'s model, with the plugin's mixins."""
    base = getattr(config.model_class, "trainer_class", None) or recbole_get_trainer(config["MODEL_TYPE"], config["model"])
    if base not in _TRAINERS:
        _TRAINERS[base] = type(f"Safe{base.__name__}", (SafeCheckpointMixin, ColdStartMixin, ModelHooksMixin, base), {})
    return _TRAINERS[base]
