"""Ray Data runs the same transforms (encoder, then a probe) in an actor pool, with the same numbers as
Dataset.map, and the result goes back to datasets through Parquet."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, load_dataset

ray = pytest.importorskip("ray")

from hf_saerl import QualityProbe, SAEEncoder  # noqa: E402
from hf_saerl.integrations.ray import map_batches  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def test_encoder_and_probe_on_ray_equal_dataset_map(ray_local, model, tokenizer, sae, texts, tmp_path):
    encoder = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8)
    ds = Dataset.from_dict({"text": texts, "id": list(range(len(texts)))})
    expected = encoder.map(ds, batch_size=4)
    probe = QualityProbe(encoder.d_sae, cv=None).fit(expected, [i % 2 == 0 for i in range(len(texts))])
    expected = expected.map(probe, batched=True)

    rds = ray.data.from_items([{"text": t, "id": i} for i, t in enumerate(texts)])
    rds = map_batches(map_batches(rds, encoder, batch_size=4), probe, batch_size=4)
    rds.write_parquet(str(tmp_path / "out"))
    back = load_dataset("parquet", data_dir=str(tmp_path / "out"), split="train").sort("id")

    assert set(back.column_names) == set(expected.column_names)  # the input columns are kept
    for name in ("sae_indices", "sae_values", "sae_n_tokens", "quality"):  # with the declared Arrow types
        # (Ray's Parquet keeps the types, not the datasets-level feature ids that record which SAE made the columns)
        assert back.features.arrow_schema.field(name).type == expected.features.arrow_schema.field(name).type, name
    assert back["text"] == expected["text"]
    assert [list(r) for r in back["sae_indices"]] == expected["sae_indices"]
    np.testing.assert_allclose(np.concatenate(back["sae_values"]), np.concatenate(expected["sae_values"]), rtol=1e-6)
    np.testing.assert_allclose(back["quality"], expected["quality"], rtol=1e-6)
