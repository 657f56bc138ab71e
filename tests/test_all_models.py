"""Every registered plugin model, end to end on its shipped default dataset: one epoch through the run
path, a weights-only checkpoint, a reload, and full-sort scores that equal ``predict`` on the same pairs.
A model added to the registry is covered here without a new test."""
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_spectral import registry
from recbole_spectral.config import SpectralConfig
from recbole_spectral.quick_start import load_data_and_model, run_recbole_spectral
from tests.helpers import FAST, default_dataset


@pytest.mark.parametrize("name", sorted(registry.PLUGIN_MODELS))
def test_one_epoch_save_reload_and_full_sort_equals_predict(name, workdir):
    dataset = default_dataset(name)
    result = run_recbole_spectral(name, dataset, config_dict={**FAST, "train_batch_size": 4096})
    assert result["test_result"] and all(v == v for v in result["test_result"].values())  # no NaN

    [checkpoint] = list((workdir / "saved").glob(f"{name}-*.pth"))
    assert torch.load(checkpoint, weights_only=True)["config"]["model"] == name
    config, model, _, _, _, test_data = load_data_and_model(str(checkpoint))
    assert type(model).__name__ == name
    model.eval()

    users = torch.tensor([1, 2, 3])
    n_items = test_data._dataset.item_num
    with torch.no_grad():
        full = model.full_sort_predict(Interaction({config["USER_ID_FIELD"]: users})).view(len(users), n_items)
        items = torch.arange(n_items)
        pairs = Interaction({config["USER_ID_FIELD"]: users.repeat_interleave(n_items),
                             config["ITEM_ID_FIELD"]: items.repeat(len(users))})
        pointwise = model.predict(pairs).view(len(users), n_items)
    torch.testing.assert_close(full[:, 1:], pointwise[:, 1:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(registry.PLUGIN_MODELS))
def test_yaml_defaults_satisfy_the_declaration(name, workdir):
    """Every declared key has a default in the model YAML, and the defaults pass the declaration."""
    config = SpectralConfig(name, default_dataset(name), config_dict={"use_gpu": False})
    declared = getattr(config.model_class, "hyperparameters", {})
    assert declared, f"{name} declares no hyperparameters"
    missing = [k for k in declared if k not in config.final_config_dict]
    assert not missing, f"{name}: declared keys without a default in properties/model/{name}.yaml: {missing}"
