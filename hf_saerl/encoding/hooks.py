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
from typing import Any

import torch
from torch import nn

from ..errors import HookMismatchError, WidthMismatchError

_TL_HOOK = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|mlp_out|attn_out)$")
SUPPORTED_HOOKS = (
    "blocks.{L}.hook_resid_pre",
    "blocks.{L}.hook_resid_post",
    "blocks.{L}.hook_mlp_out",
    "blocks.{L}.hook_attn_out",
    "an HF module path such as 'model.layers.{L}'",
)
_LAYER_PATHS = (
    "model.layers",
    "model.model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
    "layers",
    "h",
)
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

    @property
    def reads_hidden_size(self) -> bool:
        """Whether the activation read here is as wide as the model's hidden size: a TransformerLens-style hook
        of a decoder layer (residual stream, MLP or attention output) or a whole decoder layer's output."""
        if self.layer is None:
            return False
        return self.hook_name.startswith("blocks.") or self.module_path.rsplit(".", 1)[-1].isdigit()

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
    raise HookMismatchError(
        f"Could not find the decoder layers of {type(model).__name__} (looked for {list(_LAYER_PATHS)}). Pass the "
        "hook as an HF module path instead (e.g. hook_name='model.layers.12'), or use a model with a decoder-layer "
        "list."
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
        raise HookMismatchError(
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
    raise HookMismatchError(
        f"Hook {hook_name!r}: layer {block_path} of {type(model).__name__} has none of the submodules "
        f"{names}. Pass the hook as an HF module path instead (e.g. '{block_path}.<name>')."
    )


def check_hook_width(model: nn.Module, hook_name: str, d_in: int) -> ResolvedHook:
    """Resolve ``hook_name`` on ``model`` (a loaded model or its ``meta``-device structure) and refuse an SAE whose
    ``d_in`` is not the model's hidden size where the hook reads a hidden-size activation
    (:attr:`ResolvedHook.reads_hidden_size`); other module paths are checked on the first forward.

    Example:
        >>> from hf_saerl.testing import tiny_llama
        >>> check_hook_width(tiny_llama(hidden_size=32), "blocks.1.hook_resid_post", d_in=32).module_path
        'model.layers.1'
        >>> check_hook_width(tiny_llama(hidden_size=32), "blocks.1.hook_resid_post", d_in=48)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hf_saerl.errors.WidthMismatchError: SAE width mismatch: the SAE expects d_in=48 activations, but ...
    """
    hook = resolve_hook(model, hook_name)
    config = getattr(model, "config", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    if hidden is not None and hook.reads_hidden_size and hidden != d_in:
        raise WidthMismatchError(
            f"SAE width mismatch: the SAE expects d_in={d_in} activations, but {hook_name!r} of "
            f"this model has hidden size {hidden}. Use an SAE trained on this model (same layer type and width), "
            "or the model the SAE was trained on."
        )
    return hook


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
    raise HookMismatchError(
        f"Unknown hook name {path!r} for {type(model).__name__}. Supported: "
        + ", ".join(SUPPORTED_HOOKS)
        + ". Pass hook_name= to override the SAE's own hook."
    )


def _layer_index(model: nn.Module, module: nn.Module) -> int | None:
    try:
        _, layers = find_decoder_layers(model)
    except HookMismatchError:
        return None
    for i, layer in enumerate(layers):
        if module is layer or any(module is m for m in layer.modules()):
            return i
    return None
