"""Loading the policy: a built-in GGUF model (cached once as safetensors), a local Hugging Face
folder, or a tiny random model.

Paths are passed in (the web app passes ``var/models/``); nothing here reads the environment.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from .builtin_models import BUILTIN_MODELS
from .config import PolicyConfig
from .errors import ModelLoadError
from .tiny import build_tiny_policy

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def builtin_gguf_path(name: str) -> Path:
    """Where the GGUF file of a built-in model lies inside its installed package (the package
    is located, not imported). Raises ModelLoadError when it is not installed."""
    spec_info = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(spec_info.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"built-in model {name!r} needs the package "
            f"{spec_info.package!r}; install workers/requirements-models.txt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / spec_info.gguf_file
    if not path.is_file():
        raise ModelLoadError(f"built-in model {name!r}: {path} is missing")
    return path


def check_policy_available(cfg: PolicyConfig) -> None:
    """Fail fast (before any work) when the configured model cannot be found."""
    if cfg.source == "path":
        path = Path(cfg.path)
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"policy.path: no model found at {path} (expected a folder "
                "saved with save_pretrained, holding config.json)"
            )
    elif cfg.source == "builtin":
        builtin_gguf_path(cfg.name)


def load_policy(
    cfg: PolicyConfig, *, cache_dir: Path | None = None, device: str = "cpu"
):
    """Load (model, tokenizer) for ``cfg`` on ``device``, in ``cfg.dtype``.

    Built-in models are converted from GGUF once and cached under ``cache_dir/<name>/``
    (safetensors, via save_pretrained); later loads read the cache. The tokenizer always has a
    pad token (EOS when the model has none).
    """
    dtype = _DTYPES[cfg.dtype]
    if cfg.source == "tiny":
        t = cfg.tiny
        model, tokenizer = build_tiny_policy(
            hidden_size=t.hidden_size,
            num_layers=t.num_layers,
            num_heads=t.num_heads,
            intermediate_size=t.intermediate_size,
            max_position_embeddings=t.max_position_embeddings,
            alphabet=t.alphabet,
            seed=t.seed,
        )
    elif cfg.source == "path":
        check_policy_available(cfg)
        model, tokenizer = load_pretrained_folder(Path(cfg.path), dtype)
    else:
        model, tokenizer = _load_builtin(cfg.name, cache_dir, dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device=device, dtype=dtype), tokenizer


def load_pretrained_folder(path: Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) from a save_pretrained folder, e.g. a training checkpoint."""
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load a model from {path}: {exc}") from exc
    return model, tokenizer


def _load_builtin(name: str, cache_dir: Path | None, dtype: torch.dtype):
    if cache_dir is not None:
        cached = Path(cache_dir) / name
        if (cached / "config.json").is_file():
            return load_pretrained_folder(cached, dtype)
    model, tokenizer = convert_builtin(name)
    if cache_dir is not None:
        _save_atomically(model, tokenizer, Path(cache_dir) / name)
    return model, tokenizer


def convert_builtin(name: str):
    """(model, tokenizer) of the built-in model ``name`` read from its GGUF file, dequantised to
    float32: the slow step (tens of seconds) that ``load_policy``'s cache saves."""
    gguf = builtin_gguf_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not read the GGUF file {gguf}: {exc}") from exc
    _forget_gguf_origin(model)
    return model, tokenizer


def _forget_gguf_origin(model: PreTrainedModel) -> None:
    """The weights are dequantised to float on load; drop the GGUF marker so the model saves
    as plain safetensors."""
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)


def _save_atomically(model: PreTrainedModel, tokenizer, target: Path) -> None:
    """save_pretrained into a temporary sibling, then rename: readers never see half a cache,
    and two workers converting at once both end with a complete folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            pass  # another worker finished first; its folder is complete
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_policy_checkpoint(path: Path, cfg: PolicyConfig, *, device: str = "cpu"):
    """(model, tokenizer) saved in a training checkpoint, in ``cfg.dtype`` on ``device``."""
    model, tokenizer = load_pretrained_folder(Path(path), _DTYPES[cfg.dtype])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device=device, dtype=_DTYPES[cfg.dtype]), tokenizer


def stop_token_ids(model, tokenizer) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS and the generation config's."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(
        getattr(model, "generation_config", None), "eos_token_id", None
    )
    ids.update(configured if isinstance(configured, list) else [configured])
    ids.discard(None)
    if not ids:
        raise ModelLoadError(
            "the model's tokenizer defines no EOS token, so completions "
            "could never stop"
        )
    return sorted(ids)


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; other names pass through."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
