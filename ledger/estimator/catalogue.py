"""Rack, model and workload catalogues: frozen records, the shipped data and user files.

Guarantees:

* Every record is validated on load (positive sizes, known precisions, a ``source`` string);
  a bad user file raises :class:`EstimateError` naming the file, the entry (its ``id`` or
  its position) and the field.
* The only I/O is reading this package's ``data/`` files and a path the caller hands in.
* Ids are unique within a catalogue; a user file may add entries or replace shipped ones
  (``merge``), never silently duplicate them.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.estimator.errors import EstimateError

T = TypeVar("T")

PRECISIONS: tuple[str, ...] = ("bf16", "fp8", "fp4")
SCENARIOS: tuple[str, ...] = ("offline", "server", "interactive")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rack(_Record):
    """One system (an 8-GPU HGX board or an NVL rack); per-GPU figures unless named system."""

    id: str = Field(min_length=1)
    gpu: str
    gpus: int = Field(gt=0)
    nvlink_domain: int = Field(gt=0)
    hbm_gb_per_gpu: float = Field(gt=0)
    hbm_tbps_per_gpu: float = Field(gt=0)
    dense_tflops: dict[Literal["bf16", "fp8", "fp4"], float]
    nvlink_gbps_per_gpu: float | None = Field(default=None, gt=0)
    gpu_watts: float | None = Field(default=None, gt=0)
    system_kw_max: float | None = Field(default=None, gt=0)
    confidence: str = ""
    provisional: bool = False
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Rack:
        if not self.dense_tflops:
            raise ValueError("dense_tflops must give at least one precision")
        if any(v <= 0 for v in self.dense_tflops.values()):
            raise ValueError("dense_tflops values must be positive")
        if self.nvlink_domain > self.gpus and self.gpus > 0:
            # An NVLink domain larger than the system is legal only for multi-system racks;
            # the shipped systems never need it, so refuse it as a likely typo.
            raise ValueError("nvlink_domain is larger than gpus")
        return self


class ModelProfile(_Record):
    """A model's shape: enough to size weights, KV cache and FLOPs.

    Closed models (e.g. the Claude tiers) enter here with an explicit, assumed architecture
    and ``assumptions`` saying so.
    """

    id: str = Field(min_length=1)
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    q_heads: int = Field(gt=0)
    kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    vocab: int | None = Field(default=None, gt=0)
    params_total_b: float = Field(gt=0)
    params_active_b: float = Field(gt=0)
    attention: Literal["gqa", "mla"]
    kv_layers: int | None = Field(default=None, gt=0)
    kv_latent_dim: int | None = Field(default=None, gt=0)
    experts: int | None = Field(default=None, gt=1)
    experts_per_token: int | None = Field(default=None, gt=0)
    source: str = Field(min_length=1)
    assumptions: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelProfile:
        if self.params_active_b > self.params_total_b:
            raise ValueError("params_active_b exceeds params_total_b")
        if self.attention == "gqa" and (self.kv_heads is None or self.head_dim is None):
            raise ValueError("gqa attention needs kv_heads and head_dim")
        if self.attention == "mla" and self.kv_latent_dim is None:
            raise ValueError("mla attention needs kv_latent_dim")
        if (self.experts is None) != (self.experts_per_token is None):
            raise ValueError("experts and experts_per_token go together")
        if self.experts is not None and self.experts_per_token is not None:
            if self.experts_per_token >= self.experts:
                raise ValueError("experts_per_token must be below experts")
            if self.params_active_b == self.params_total_b:
                raise ValueError("a MoE model needs params_active_b below params_total_b")
        if self.kv_layers is not None and self.kv_layers > self.layers:
            raise ValueError("kv_layers exceeds layers")
        return self

    @property
    def is_moe(self) -> bool:
        return self.experts is not None

    def kv_bytes_per_token(self, bytes_per_value: float = 2.0) -> float:
        """KV-cache bytes per token of context.

        GQA: 2 (K and V) · kv_layers · kv_heads · head_dim · bytes. MLA: the compressed latent,
        kv_layers · kv_latent_dim · bytes (one vector per layer, no separate K and V).
        """
        kv_layers = self.kv_layers or self.layers
        if self.attention == "mla":
            assert self.kv_latent_dim is not None  # checked on construction
            return kv_layers * self.kv_latent_dim * bytes_per_value
        assert self.kv_heads is not None
        assert self.head_dim is not None
        return 2 * kv_layers * self.kv_heads * self.head_dim * bytes_per_value

    def attention_dim(self) -> int:
        """Per-head width that attention FLOPs scale with (head_dim, or the MLA latent)."""
        if self.attention == "mla":
            assert self.kv_latent_dim is not None
            return self.kv_latent_dim
        assert self.head_dim is not None
        return self.head_dim


class LatencyLimits(_Record):
    """99th-percentile limits of a latency-bound scenario, in milliseconds."""

    ttft_ms: float = Field(gt=0)
    tpot_ms: float = Field(gt=0)


class Workload(_Record):
    """A request shape: mean input and output tokens, and optional scenario limits."""

    id: str = Field(min_length=1)
    input_tokens: float = Field(gt=0)
    output_tokens: float = Field(gt=0)
    model: str | None = None
    dataset: str = ""
    server: LatencyLimits | None = None
    interactive: LatencyLimits | None = None
    lengths_assumed: bool = False
    lengths_source: str = ""
    latency_assumed: bool = False
    latency_source: str = ""

    def limits(self, scenario: str) -> LatencyLimits | None:
        """The limits of ``scenario``; ``None`` for offline. Unknown scenario → EstimateError."""
        if scenario == "offline":
            return None
        if scenario not in SCENARIOS:
            raise EstimateError(
                f"unknown scenario '{scenario}'; expected one of {', '.join(SCENARIOS)}"
            )
        found: LatencyLimits | None = getattr(self, scenario)
        if found is None:
            raise EstimateError(
                f"workload '{self.id}' has no {scenario} latency limits", field=scenario
            )
        return found


def shape(input_tokens: float, output_tokens: float, **limits: LatencyLimits) -> Workload:
    """A free workload shape (tokens given directly); ``server=``/``interactive=`` optional."""
    try:
        return Workload(
            id=f"shape-{input_tokens:g}-{output_tokens:g}",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            **limits,
        )
    except ValidationError as exc:
        raise _error_from(exc, file=None, entry="shape") from None


# -- loading -------------------------------------------------------------------------------

_KINDS: dict[str, type[_Record]] = {"racks": Rack, "models": ModelProfile, "workloads": Workload}


def _error_from(exc: ValidationError, *, file: str | None, entry: str) -> EstimateError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    return EstimateError(first["msg"], file=file, entry=entry, field=field)


def _parse(text: str, key: str, file: str) -> list[Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EstimateError(f"not valid YAML: {exc}", file=file) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get(key), list):
        raise EstimateError(f"expected a top-level '{key}:' list", file=file)
    return list(doc[key])


def _records(text: str, key: str, file: str) -> dict[str, Any]:
    kind = _KINDS[key]
    out: dict[str, Any] = {}
    for i, raw in enumerate(_parse(text, key, file)):
        name = str(raw.get("id")) if isinstance(raw, Mapping) and raw.get("id") else f"#{i + 1}"
        if not isinstance(raw, Mapping):
            raise EstimateError("entry is not a mapping", file=file, entry=name)
        try:
            record = kind.model_validate(dict(raw))
        except ValidationError as exc:
            raise _error_from(exc, file=file, entry=name) from None
        if name in out:
            raise EstimateError("duplicate id", file=file, entry=name, field="id")
        out[name] = record
    return out


def _shipped(name: str) -> str:
    return resources.files("ledger.estimator").joinpath("data", name).read_text("utf-8")


def _load(key: str, path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return _records(_shipped(f"{key}.yaml"), key, f"ledger/estimator/data/{key}.yaml")
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise EstimateError(f"cannot read: {exc.strerror}", file=str(p)) from None
    return _records(text, key, str(p))


def load_racks(path: str | Path | None = None) -> dict[str, Rack]:
    """The shipped rack catalogue, or the racks of the YAML file at ``path``."""
    return _load("racks", path)


def load_models(path: str | Path | None = None) -> dict[str, ModelProfile]:
    """The shipped model catalogue, or the model profiles of the YAML file at ``path``."""
    return _load("models", path)


def load_workloads(path: str | Path | None = None) -> dict[str, Workload]:
    """The shipped MLPerf workload presets, or the workloads of the YAML file at ``path``."""
    return _load("workloads", path)


def merge(shipped: Mapping[str, T], *extra: Mapping[str, T]) -> dict[str, T]:
    """Shipped entries overlaid by user entries with the same id (user wins)."""
    out = dict(shipped)
    for more in extra:
        out.update(more)
    return out


def pick(catalogue: Mapping[str, T], name: str, what: str) -> T:
    """``catalogue[name]`` or an EstimateError naming ``name`` and the known ids."""
    try:
        return catalogue[name]
    except KeyError:
        known = ", ".join(sorted(catalogue))
        raise EstimateError(f"unknown {what} '{name}'; known: {known}") from None
