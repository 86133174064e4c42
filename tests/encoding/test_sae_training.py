"""ActivationReader and train_sae on the tiny offline Llama: correctness, quality, cache, errors."""

from __future__ import annotations

import json

import pytest
import torch

from hf_saerl import SAEEncoder
from hf_saerl.encoding.activations import ActivationReader
from hf_saerl.encoding.sae_training import TRAINING_FILE, evaluate_sae, middle_hook, train_sae
from hf_saerl.testing import tiny_llama, tiny_tokenizer

TEXTS = [f"{a} + {b} = {a + b}" for a in range(12) for b in range(12)] + ["The sky is blue.", "x*y = 6"]
FAST = dict(d_sae=64, k=8, total_tokens=20_000, batch_size_tokens=256, lr=3e-3, max_length=64, progress=False)


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def trained(model, tok, tmp_path_factory):
    cache = tmp_path_factory.mktemp("saes")
    sae, stats = train_sae(model, tok, TEXTS, cache_dir=cache, **FAST)
    return sae, stats, cache


def _reference_activations(model, tok, texts, layer, max_length, start=1):
    """Hand-written: one text at a time, full forward with output_hidden_states, drop BOS / first token."""
    rows = []
    for text in texts:
        ids = tok(text)["input_ids"][:max_length]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        hidden = out.hidden_states[layer + 1][0]  # output of decoder layer `layer` (not the last one)
        rows.append(hidden[start:])
    return torch.cat(rows)


@pytest.mark.parametrize("token_budget", [16, 4096])
def test_reader_matches_hidden_states(model, tok, token_budget):
    texts = ["2 + 2 = 4", "The sky is blue.", "a", "hello world, long text " * 3]
    reader = ActivationReader(model, tok, "blocks.1.hook_resid_post", max_length=40, token_budget=token_budget)
    got = {}
    ids, truncated = reader.tokenize(texts)
    assert truncated == [False, False, False, True]
    for batch in reader.microbatches(ids):
        for j, r in enumerate(batch.rows):
            got[r] = batch.flat[batch.row_ids == j]
            assert batch.is_last[batch.row_ids == j].tolist()[-1] is True
    ref = [_reference_activations(model, tok, [t], layer=1, max_length=40) for t in texts]
    for i in range(len(texts)):
        torch.testing.assert_close(got[i], ref[i], atol=1e-5, rtol=1e-4)
    flat = torch.cat(list(reader.iter_activations(texts, batch_size=3)))
    assert flat.shape == (sum(len(x) for x in ref), model.config.hidden_size)


def test_middle_hook_default(model):
    assert middle_hook(model) == "blocks.1.hook_resid_post"
    assert middle_hook(tiny_llama(n_layers=4)) == "blocks.2.hook_resid_post"


def test_trained_sae_beats_untrained_on_held_out(model, tok, trained):
    from sae_lens import TopKSAE, TopKSAEConfig

    sae, stats, _ = trained
    assert stats["cache_hit"] is False
    assert sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post" and sae.cfg.metadata.model_name
    assert sae.cfg.architecture() == "topk" and sae.cfg.k == 8 and sae.cfg.d_sae == 64
    assert stats["n_train_tokens"] + stats["n_eval_tokens"] == stats["n_tokens"] > 0
    assert stats["n_eval_tokens"] > 0 and stats["train_steps"] == -(-20_000 // 256)

    # Recompute on the held-out texts (every 10th, offset 5) with the hand-written reference forward.
    held_out = [t for i, t in enumerate(TEXTS) if i % 10 == 5]
    acts = _reference_activations(model, tok, held_out, layer=1, max_length=64)
    assert acts.shape[0] == stats["n_eval_tokens"]
    with torch.no_grad():
        x_hat = sae(acts)
        z = sae.encode(acts)
    ev = 1 - (acts - x_hat).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()
    assert ev.item() == pytest.approx(stats["explained_variance"], abs=1e-4)
    assert (z != 0).sum(-1).float().mean().item() == pytest.approx(stats["mean_l0"])
    assert stats["mean_l0"] <= 8
    assert stats["dead_fraction"] == pytest.approx(((z != 0).sum(0) == 0).float().mean().item())

    torch.manual_seed(0)
    untrained = TopKSAE(TopKSAEConfig(d_in=32, d_sae=64, k=8)).eval()
    baseline = evaluate_sae(untrained, acts)["explained_variance"]
    assert stats["explained_variance"] > 0.7
    assert stats["explained_variance"] > baseline + 0.3


def test_cache_hit_does_not_run_the_model(model, tok, trained, monkeypatch):
    sae, stats, cache = trained
    calls = []
    monkeypatch.setattr(
        model, "forward", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(AssertionError("ran"))
    )
    again, stats2 = train_sae(model, tok, TEXTS, cache_dir=cache, **FAST)
    assert calls == [] and stats2["cache_hit"] is True
    assert stats2["explained_variance"] == stats["explained_variance"] and stats2["key"] == stats["key"]
    for name, value in sae.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value)
    record = json.loads((cache / stats["key"] / TRAINING_FILE).read_text())
    assert record["config"]["d_sae"] == 64 and record["stats"]["n_tokens"] == stats["n_tokens"]
    # anything that decides the result changes the key
    with pytest.raises(AssertionError, match="ran"):
        train_sae(model, tok, TEXTS, cache_dir=cache, **{**FAST, "seed": 1})
    with pytest.raises(AssertionError, match="ran"):
        train_sae(model, tok, TEXTS[:-1], cache_dir=cache, **FAST)


@pytest.mark.parametrize("damage", ["delete_weights", "garble_cfg", "garble_training"])
def test_corrupt_cache_is_retrained(model, tok, tmp_path, damage):
    kwargs = {**FAST, "total_tokens": 2560}
    _, stats = train_sae(model, tok, TEXTS[:40], cache_dir=tmp_path, **kwargs)
    folder = tmp_path / stats["key"]
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors", TRAINING_FILE]
    if damage == "delete_weights":
        (folder / "sae_weights.safetensors").unlink()
    else:
        (folder / ("cfg.json" if damage == "garble_cfg" else TRAINING_FILE)).write_text("{not json")
    _, again = train_sae(model, tok, TEXTS[:40], cache_dir=tmp_path, **kwargs)
    assert again["cache_hit"] is False and again["key"] == stats["key"]
    assert (folder / "sae_weights.safetensors").exists()
    assert train_sae(model, tok, TEXTS[:40], cache_dir=tmp_path, **kwargs)[1]["cache_hit"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k=0), "1 <= k <= d_sae"),
        (dict(k=65), "1 <= k <= d_sae"),
        (dict(d_sae=0), "d_sae must be a positive int"),
        (dict(total_tokens=10), "less than one batch"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(hook_name="blocks.9.hook_resid_post"), "model has 3 layers"),
        (dict(hook_name="nonsense.module"), "Unknown hook name"),
    ],
)
def test_bad_arguments(model, tok, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_sae(model, tok, TEXTS, cache_dir=tmp_path, **{**FAST, **kwargs})


def test_empty_texts(model, tok, tmp_path):
    for texts in ([], ["", "   ", None]):
        with pytest.raises(ValueError, match="at least one non-empty text"):
            train_sae(model, tok, texts, cache_dir=tmp_path, **FAST)


def test_trained_sae_works_in_encoder(model, tok, trained, tmp_path):
    from hf_saerl import load_sae

    sae, stats, cache = trained
    enc = SAEEncoder(model, sae, tokenizer=tok, top_k=4)
    assert enc.hook_name == "blocks.1.hook_resid_post"
    matrix = enc.encode(["1 + 1 = 2", "The sky is blue."])
    assert matrix.shape == (2, 64) and (matrix.getnnz(axis=1) == 4).all()
    from_disk = SAEEncoder(model, str(cache / stats["key"]), tokenizer=tok, top_k=4)
    torch.testing.assert_close(
        torch.tensor(from_disk.encode(["1 + 1 = 2"]).toarray()),
        torch.tensor(matrix[:1].toarray()),
        atol=1e-5,
        rtol=1e-4,
    )
    assert load_sae(str(cache / stats["key"])).cfg.d_sae == 64


def test_no_cache_writes_nothing(model, tok, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_SAERL_CACHE", str(tmp_path))
    _, stats = train_sae(model, tok, TEXTS[:30], cache=False, **{**FAST, "total_tokens": 1024})
    assert stats["path"] is None and list(tmp_path.iterdir()) == []
    _, stats = train_sae(model, tok, TEXTS[:30], **{**FAST, "total_tokens": 1024})
    assert stats["path"] == str(tmp_path / "saes" / stats["key"])


def test_a_starved_sae_warns_with_its_dead_share(model, tok, trained, caplog):
    """Too many latents for too little data: the share of latents that never fire is logged as a warning, naming the
    tokens seen and the fix; a well-fed SAE (the module's ``trained``, 64 latents) is not reported."""
    from hf_saerl.encoding.sae_training import DEAD_WARNING

    with caplog.at_level("WARNING", logger="hf_saerl.encoding.sae_training"):
        _, stats = train_sae(model, tok, TEXTS[:6], **{**FAST, "d_sae": 512, "total_tokens": 512, "cache": False})
    assert stats["dead_fraction"] > DEAD_WARNING  # the independent reading: the SAE's own evaluation
    assert f"{100 * stats['dead_fraction']:.0f}% of the SAE's 512 latents never fired" in caplog.text
    assert f"it saw {stats['n_tokens']} tokens" in caplog.text and "d_sae=" in caplog.text
    assert trained[1]["dead_fraction"] <= DEAD_WARNING
