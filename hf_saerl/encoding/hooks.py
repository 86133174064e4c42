"""Map TransformerLens-style hook names onto a Hugging Face model, and stop the forward pass there.

SAEs are trained on named activation sites. sae-lens names them TransformerLens-style
(``blocks.{L}.hook_resid_post``); a plain ``transformers`` model has no such names, so this module
maps them onto modules of the HF model:

=============================  =====================================================
hook name                      HF activation
=============================  =====================================================
``blocks.L.hook_resid_pre``    input ``hidden_states`` of decoder layer ``L``
``blocks.L.hook_resid_post``   output of decoder layer ``L`` (not ``hidden_states[L+1]``
                               for the last layer: HF applies the final norm there)
``blocks.L.hook_mlp_out``      output of layer ``L``'s MLP
``blocks.L.hook_attn_out``     output of layer ``L``'s attention (with its out-projection)
an HF module path              output of that module, e.g. ``model.layers.12`` (sae-lens
                               ``HookedProxyLM`` and EleutherAI sparsify use these)
=============================  =====================================================

:class:`StopForward` is raised from inside the hook, so the layers after the hooked one (and the LM
head) never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

_TL_HOOK = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|mlp_out|attn_out)$")
SUPPORTED_HOOKS = (
    "blocks.{L}.hook_resid_pre",
    "blocks.{L}.hook_resid_post",
    "blocks.{L}.hook_mlp_out",
    "blocks.{L}.hook_attn_out",
    "an HF module path such as 'model.layers.{L}'",
)
_LAYER_PATHS = ("model.layers", "model.model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers", "layers", "h")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")
_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")


class StopForward(Exception):
    """Raised by the hook to end the forward pass early; carries the captured activation."""

    def __init__(self, activation: torch.Tensor):
        super().__init__("forward pass stopped at the SAE hook")
        self.activation = activation


@dataclass
class ResolvedHook:
    """Where a hook name lands in a model: ``module``, whether its input (``pre``) or output is read."""

    hook_name: str
    module: nn.Module
    module_path: str
    read_input: bool
    layer: int | None

    def capture(self, model: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Run ``model(*args, **kwargs)`` up to this hook and return the activation there."""
        if self.read_input:
            handle = self.module.register_forward_pre_hook(_raise_input, with_kwargs=True)
        else:
            handle = self.module.register_forward_hook(_raise_output, with_kwargs=True)
        try:
            model(*args, **kwargs)
        except StopForward as stop:
            return stop.activation
        finally:
            handle.remove()
        raise RuntimeError(
            f"The forward pass never reached {self.module_path!r} (hook {self.hook_name!r}); "
            "the model does not use this module in its forward pass."
        )


def _first_tensor(x: Any) -> torch.Tensor:
    while isinstance(x, (tuple, list)):
        x = x[0]
    if hasattr(x, "last_hidden_state"):
        x = x.last_hidden_state
    return x


def _raise_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
    raise StopForward(_first_tensor(args) if args else kwargs["hidden_states"])


def _raise_output(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
    raise StopForward(_first_tensor(output))


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's list of decoder layers and its path (``model.layers`` for Llama-style models)."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for path in _LAYER_PATHS:
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(module, nn.ModuleList) and (n_layers is None or len(module) == n_layers):
            return path, module
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and n_layers is not None and len(module) == n_layers:
            return path, module
    raise ValueError(
        f"Could not find the decoder layers of {type(model).__name__}. Pass the hook as an HF module "
        "path instead (e.g. hook_name='model.layers.12')."
    )


def resolve_hook(model: nn.Module, hook_name: str) -> ResolvedHook:
    """Resolve ``hook_name`` on ``model``.

    Example:
        >>> from hf_saerl.testing import tiny_llama
        >>> resolve_hook(tiny_llama(n_layers=3), "blocks.2.hook_resid_post").module_path
        'model.layers.2'
    """
    match = _TL_HOOK.match(hook_name)
    if match is None:
        return _resolve_module_path(model, hook_name)
    layer, site = int(match.group(1)), match.group(2)
    layers_path, layers = find_decoder_layers(model)
    if layer >= len(layers):
        raise ValueError(
            f"Hook {hook_name!r} asks for layer {layer}, but the model has {len(layers)} layers "
            f"(0..{len(layers) - 1}). Use an SAE trained on this model, or pass hook_name= with a valid layer."
        )
    block_path = f"{layers_path}.{layer}"
    if site in ("resid_pre", "resid_post"):
        return ResolvedHook(hook_name, layers[layer], block_path, site == "resid_pre", layer)
    names = _MLP_NAMES if site == "mlp_out" else _ATTN_NAMES
    for name in names:
        sub = getattr(layers[layer], name, None)
        if isinstance(sub, nn.Module):
            return ResolvedHook(hook_name, sub, f"{block_path}.{name}", False, layer)
    raise ValueError(
        f"Hook {hook_name!r}: layer {block_path} of {type(model).__name__} has none of the submodules "
        f"{names}. Pass the hook as an HF module path instead (e.g. '{block_path}.<name>')."
    )


def _resolve_module_path(model: nn.Module, path: str) -> ResolvedHook:
    candidates = [path]
    if "." in path:  # 'model.layers.3' on a bare LlamaModel is 'layers.3'
        candidates.append(path.split(".", 1)[1])
    for candidate in candidates:
        try:
            module = model.get_submodule(candidate)
        except AttributeError:
            continue
        if module is model:
            break
        layer = _layer_index(model, module)
        return ResolvedHook(path, module, candidate, False, layer)
    raise ValueError(
        f"Unknown hook name {path!r} for {type(model).__name__}. Supported: "
        + ", ".join(SUPPORTED_HOOKS)
        + ". Pass hook_name= to override the SAE's own hook."
    )


def _layer_index(model: nn.Module, module: nn.Module) -> int | None:
    try:
        _, layers = find_decoder_layers(model)
    except ValueError:
        return None
    for i, layer in enumerate(layers):
        if module is layer or any(module is m for m in layer.modules()):
            return i
    return None


def capture_fn(model: nn.Module, hook_name: str) -> Callable[..., torch.Tensor]:
    """``fn(input_ids, attention_mask) -> activation at hook_name``, running the truncated forward."""
    hook = resolve_hook(model, hook_name)

    def run(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return hook.capture(model, input_ids=input_ids, attention_mask=attention_mask, use_cache=False)

    return run
