"""ConceptShapedDPOTrainer: the shaped loss on a batch equals ``dpo_loss`` from independently computed log-probs,
λ=0 is vanilla DPOTrainer, and a real 2-step run carries the dataset's margins into the loss."""

from __future__ import annotations

import datasets
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("trl")
from trl import DPOConfig, DPOTrainer

from hf_saerl.audit import dpo_loss
from hf_saerl.errors import InvalidParameterError
from hf_saerl.integrations.dpo import ConceptShapedDPOTrainer
from hf_saerl.testing import tiny_llama, tiny_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

BETA, LAM = 0.5, 0.7


def pairs(n: int = 8, conversational: bool = False) -> datasets.Dataset:
    prompts = [f"q{k}?" for k in range(n)]
    chosen = [f"yes {k}" + "!" * (k % 3) for k in range(n)]
    rejected = [f"no{k}" for k in range(n)]
    if conversational:
        prompts = [[{"role": "user", "content": p}] for p in prompts]
        chosen = [[{"role": "assistant", "content": c}] for c in chosen]
        rejected = [[{"role": "assistant", "content": r}] for r in rejected]
    margins = [(-1.0) ** k * (0.25 + 0.5 * k) for k in range(n)]  # distinct, both signs
    return datasets.Dataset.from_dict(
        {"prompt": prompts, "chosen": chosen, "rejected": rejected, "concept_margin": margins}
    )


def config(tmp_path, **kw) -> DPOConfig:
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=2,
        beta=BETA,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=3,
        disable_tqdm=True,
        learning_rate=1e-2,
        max_length=64,
    )
    return DPOConfig(**{**base, **kw})


def make(tmp_path, cls=ConceptShapedDPOTrainer, data=None, **kw):
    extra = {"concept_lambda": kw.pop("concept_lambda")} if "concept_lambda" in kw else {}
    # A reference that differs from the policy, so the ref log-probs matter in the loss.
    return cls(
        tiny_llama(seed=0),
        ref_model=tiny_llama(seed=1),
        args=config(tmp_path, **kw),
        train_dataset=data if data is not None else pairs(),
        processing_class=tiny_tokenizer(),
        **extra,
    )


def sequence_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion-token log-probs by a plain forward (no TRL code), split into chosen / rejected."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = F.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    return (logps * batch["completion_mask"][:, 1:]).sum(1).chunk(2)


def row_margins(trainer, batch) -> torch.Tensor:
    """The dataset's margin of each pair in ``batch``, found by its prompt+chosen token ids."""
    ds = trainer.train_dataset
    by_ids = {tuple(p + c): m for p, c, m in zip(ds["prompt_ids"], ds["chosen_ids"], ds["concept_margin"], strict=True)}
    n = batch["input_ids"].shape[0] // 2
    return torch.tensor(
        [by_ids[tuple(batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist())] for i in range(n)]
    )


@pytest.mark.parametrize("precompute, conversational", [(False, False), (True, True)])
def test_shaped_loss_is_dpo_loss(tmp_path, precompute, conversational):
    trainer = make(
        tmp_path, data=pairs(conversational=conversational), concept_lambda=LAM, precompute_ref_log_probs=precompute
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    margin = row_margins(trainer, batch)
    assert torch.equal(batch["concept_margin"], margin)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    pc, pr = sequence_logps(trainer.model, batch)
    ref = trainer.ref_model if trainer.ref_model is not None else tiny_llama(seed=1)
    rc, rr = sequence_logps(ref, batch)
    assert not torch.allclose(pc - rc, torch.zeros_like(pc), atol=1e-3)  # policy ≠ reference
    expected = dpo_loss(pc, pr, rc, rr, beta=BETA, margin=margin, lam=LAM)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    unshaped = dpo_loss(pc, pr, rc, rr, beta=BETA)
    assert abs(loss.item() - unshaped.item()) > 1e-2  # the shaping term is really there


def test_lambda_zero_is_vanilla_dpo(tmp_path):
    ours = make(tmp_path / "a", concept_lambda=0.0)
    vanilla = make(tmp_path / "b", cls=DPOTrainer)
    rows = [ours.train_dataset[i] for i in range(4)]
    with torch.no_grad():
        shaped_zero = ours.compute_loss(ours.model, ours.data_collator(rows))
        plain = vanilla.compute_loss(vanilla.model, vanilla.data_collator(rows))
    assert torch.equal(shaped_zero, plain)
    shaped = make(tmp_path / "c", concept_lambda=LAM)
    with torch.no_grad():
        assert not torch.allclose(shaped.compute_loss(shaped.model, shaped.data_collator(rows)), plain)


class Recording(ConceptShapedDPOTrainer):
    """Records what TRL's ``_compute_loss`` receives: the batch and the (shifted) reference log-probs."""

    seen: list

    def _compute_loss(self, model, inputs, return_outputs):
        self.seen.append({k: v.detach().clone() for k, v in inputs.items()})
        return super()._compute_loss(model, inputs, return_outputs)


def test_train_two_steps_with_the_datasets_margins(tmp_path):
    Recording.seen = []
    trainer = make(tmp_path, cls=Recording, concept_lambda=-LAM)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert trainer.state.global_step == 2 and len(Recording.seen) == 2
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters(), strict=True))
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.state.log_history if "loss" in h)
    for batch in Recording.seen:
        assert "concept_margin" not in batch  # popped before the model sees the batch
        rc, _ = sequence_logps(trainer.ref_model, batch)
        reaching = (rc - batch["ref_chosen_logps"]) * BETA / -LAM  # ref_c − shift = ref_c − λ·m/β
        assert torch.allclose(reaching, row_margins(trainer, batch), atol=1e-4)


def test_refuses_unshapeable_losses_and_missing_column(tmp_path):
    with pytest.raises(InvalidParameterError, match="loss_type='sigmoid'"):
        make(tmp_path, concept_lambda=1.0, loss_type=["ipo"])
    with pytest.raises(InvalidParameterError, match="reverse_kl"):
        make(tmp_path, concept_lambda=1.0, f_divergence_type="forward_kl")
    with pytest.raises(InvalidParameterError, match="add_concept_margin"):
        make(tmp_path, data=pairs().remove_columns("concept_margin"), concept_lambda=1.0)
    make(tmp_path, concept_lambda=0.0, loss_type=["ipo"])  # λ = 0 shapes nothing: any loss


def test_import_error_names_the_extra(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "trl", None)
    monkeypatch.delitem(sys.modules, "hf_saerl.integrations.dpo")
    with pytest.raises(ImportError, match=r"pip install 'hf-saerl\[trl\]'"):
        importlib.import_module("hf_saerl.integrations.dpo")
