"""The roofline physics: instance sizing, HBM-bounded batch, latency-bounded batch, throughput.

Pure arithmetic on catalogue records; no I/O. The formulas (all in SI units: bytes, FLOP/s,
seconds) are documented one by one in ``docs/estimator.md``:

* weights per instance  W = params_total · bytes_per_weight(precision)
* KV bytes per context token  (GQA) 2 · kv_layers · kv_heads · head_dim · kv_bytes,
  (MLA) kv_layers · kv_latent_dim · kv_bytes
* HBM batch bound  B_hbm = (g · HBM · u − W) / (kv_tok · (ISL + OSL))
* decode step  t_step(B) = max(W_read(B) + B · kv_tok · ctx, ·/(g · BW · η_mem);
  B · F_tok / (g · peak · η_comp)), with W_read(B) = W for dense models and, for MoE,
  shared + expert · E · (1 − (1 − k/E)^B) (the expected number of distinct experts touched)
* prefill per request  F_pre = 2 · active · ISL + 2 · kv_layers · q_heads · d_attn · ISL²,
  interleaved with decode: its time per output token p = F_pre / (g · peak · η_comp) / OSL
* time per output token of one sequence  TPOT(B) = t_step(B) + B · p; throughput B / TPOT(B)
* offline runs at B_hbm; server and interactive at the largest B with
  TPOT(B) ≤ headroom · TPOT_limit (headroom fitted: the limits are 99th percentiles), at
  most load · the offline throughput (fitted: Poisson arrivals need spare capacity), and at
  most ρ_max · OSL / s with s = F_pre / (g · peak · η_comp) one request's prefill and
  ρ_max = 1 − q · s / TTFT_limit the prefill utilisation at which queued prefills still meet
  the p99 TTFT limit (q fitted; see ``ttft_share``)

Guarantees: throughput never exceeds the HBM-bandwidth or the compute roofline at η = 1; a
larger batch never lowers throughput; an unmet fit raises :class:`EstimateError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.estimator.catalogue import ModelProfile, Rack, Workload
from ledger.estimator.errors import EstimateError

# NVFP4 stores 16 four-bit values with one FP8 (E4M3) scale: 4.5 bits per weight.
BYTES_PER_WEIGHT: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5625}
# Assumption: the KV cache is kept in FP8 whenever the weights are FP8 or FP4 (as the MLPerf
# submissions that publish their configs do), in BF16 otherwise.
KV_BYTES_PER_VALUE: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "fp4": 1.0}
# Assumption: 90 % of HBM is usable for weights + KV (runtime, activations, fragmentation).
HBM_USABLE = 0.90
# Instance sizing: a tensor/expert-parallel group may hold weights in at most this share of
# usable HBM.
WEIGHT_SHARE_MAX = 0.80
# Preferred instances leave at least this share of usable HBM to the KV cache (a small
# instance with a tiny cache would throttle the batch; MLPerf submissions size likewise).
KV_SHARE_MIN = 0.50
_GROUP_SIZES = (1, 2, 4, 8, 16, 32, 36, 64, 72, 144)
_FIXED_POINT_ROUNDS = 6


@dataclass(frozen=True)
class Efficiencies:
    """Fitted fractions of peak: memory bandwidth, dense compute per precision, a MoE
    multiplier, the share of a scenario's TPOT limit a mean decode step may use, the share of
    offline capacity a latency scenario sustains, and the p99 queueing multiple of the TTFT
    bound."""

    memory: float
    compute_fp8: float
    compute_fp4: float
    moe: float
    headroom: float
    server_load: float
    interactive_load: float
    # p99 time-in-queue multiple of the TTFT bound (see ``ttft_share``), fitted; the default 0
    # switches the bound off, so Efficiencies built with the first seven fields keep working.
    ttft_queue: float = 0.0

    def compute(self, precision: str) -> float:
        # No calibration row runs BF16; it shares the FP8 efficiency (documented assumption).
        return self.compute_fp4 if precision == "fp4" else self.compute_fp8

    def load(self, scenario: str) -> float:
        """Share of offline capacity a latency scenario sustains (Poisson arrivals queue)."""
        if scenario == "offline":
            return 1.0
        return self.interactive_load if scenario == "interactive" else self.server_load


@dataclass(frozen=True)
class Case:
    """Everything the throughput formula needs, for one instance of g GPUs."""

    precision: str
    scenario: str
    gpus_per_instance: int
    weights_bytes: float
    shared_bytes: float
    expert_bytes: float
    experts: int
    experts_per_token: int
    kv_bytes_per_token: float
    input_tokens: float
    output_tokens: float
    bandwidth: float  # bytes/s of the instance at peak
    peak_flops: float  # FLOP/s of the instance at peak, the precision's dense column
    flops_per_token: float
    prefill_flops: float
    batch_hbm: float
    tpot_limit_s: float | None
    ttft_limit_s: float | None

    @property
    def context_mean(self) -> float:
        return self.input_tokens + self.output_tokens / 2

    @property
    def is_moe(self) -> bool:
        return self.experts > 0


@dataclass(frozen=True)
class Throughput:
    tokens_per_s: float  # per instance
    batch: float
    bound: str  # "memory" or "compute"
    prefill_s: float  # one request's prefill on an idle instance


def weights_bytes(model: ModelProfile, precision: str) -> float:
    return model.params_total_b * 1e9 * BYTES_PER_WEIGHT[precision]


def peak_tflops(rack: Rack, precision: str) -> float:
    """The rack's dense TFLOPS at ``precision``, or an EstimateError naming both."""
    if precision not in BYTES_PER_WEIGHT:
        raise EstimateError(
            f"unknown precision '{precision}'; expected one of {', '.join(BYTES_PER_WEIGHT)}",
            field="precision",
        )
    value = rack.dense_tflops.get(precision)  # type: ignore[call-overload]
    if value is None:
        raise EstimateError(
            f"rack '{rack.id}' publishes no dense {precision} TFLOPS; "
            f"it has {', '.join(sorted(rack.dense_tflops))}",
            entry=rack.id,
            field=f"dense_tflops.{precision}",
        )
    return float(value)


def group_sizes(rack: Rack, model: ModelProfile, precision: str, gpus: int) -> list[int]:
    """Instance sizes (GPUs per instance) to try, preferred first.

    Candidates lie inside the NVLink domain and hold the weights in at most
    ``WEIGHT_SHARE_MAX`` of usable HBM. The preferred size is the smallest whose weights take
    at most ``KV_SHARE_MIN``'s complement (so at least half the HBM is KV cache); when none
    does, the largest candidate. Larger candidates follow (a latency limit may need them).
    Empty when even the whole domain cannot hold the weights.
    """
    usable = rack.hbm_gb_per_gpu * 1e9 * HBM_USABLE
    w = weights_bytes(model, precision)
    limit = min(rack.nvlink_domain, gpus)
    fits = [g for g in _GROUP_SIZES if g <= limit and w / g <= WEIGHT_SHARE_MAX * usable]
    roomy = [g for g in fits if w / g <= (1 - KV_SHARE_MIN) * usable]
    if not roomy:
        return fits[-1:]
    return [g for g in fits if g >= roomy[0]]


def build_case(
    rack: Rack,
    model: ModelProfile,
    precision: str,
    workload: Workload,
    scenario: str,
    gpus_per_instance: int,
) -> Case:
    """Precompute the instance's constants; raises if the weights and one sequence don't fit."""
    peak = peak_tflops(rack, precision) * 1e12
    limits = workload.limits(scenario)
    g = gpus_per_instance
    w = weights_bytes(model, precision)
    total, active = model.params_total_b * 1e9, model.params_active_b * 1e9
    bpw = BYTES_PER_WEIGHT[precision]
    experts = model.experts or 0
    k = model.experts_per_token or 0
    if experts:
        per_expert = (total - active) / (experts - k)
        shared = active - k * per_expert
    else:
        per_expert, shared = 0.0, total
    kv_tok = model.kv_bytes_per_token(KV_BYTES_PER_VALUE[precision])
    isl, osl = workload.input_tokens, workload.output_tokens
    kv_layers = model.kv_layers or model.layers
    attn = 2 * kv_layers * model.q_heads * model.attention_dim()
    free = g * rack.hbm_gb_per_gpu * 1e9 * HBM_USABLE - w
    batch_hbm = free / (kv_tok * (isl + osl))
    if batch_hbm < 1:
        raise EstimateError(
            f"model '{model.id}' at {precision} on {g} GPU(s) of '{rack.id}' leaves room for "
            f"{max(batch_hbm, 0):.2f} sequences of {isl + osl:g} tokens; use more GPUs per "
            "instance or a shorter context",
            field="gpus_per_instance",
        )
    return Case(
        precision=precision,
        scenario=scenario,
        gpus_per_instance=g,
        weights_bytes=w,
        shared_bytes=shared * bpw,
        expert_bytes=per_expert * bpw,
        experts=experts,
        experts_per_token=k,
        kv_bytes_per_token=kv_tok,
        input_tokens=isl,
        output_tokens=osl,
        bandwidth=g * rack.hbm_tbps_per_gpu * 1e12,
        peak_flops=g * peak,
        flops_per_token=2 * active + 2 * attn * (isl + osl / 2),
        prefill_flops=2 * active * isl + attn * isl * isl,
        batch_hbm=batch_hbm,
        tpot_limit_s=limits.tpot_ms / 1000 if limits else None,
        ttft_limit_s=limits.ttft_ms / 1000 if limits else None,
    )


def weights_read(case: Case, batch: float) -> float:
    """Bytes of weights one decode step reads: all of them for a dense model; for MoE the
    shared part plus the expected number of distinct experts a batch of B tokens routes to."""
    if not case.is_moe:
        return case.weights_bytes
    untouched: float = (1 - case.experts_per_token / case.experts) ** max(batch, 1.0)
    return case.shared_bytes + case.expert_bytes * case.experts * (1 - untouched)


def ttft_share(prefill_s: float, ttft_limit_s: float, queue: float) -> float:
    """The largest share ρ of an instance's time that prefills may take under Poisson arrivals
    while the 99th-percentile TTFT stays within the limit.

    Prefills queue for the instance's compute (a single-server queue, service time
    s = ``prefill_s``, utilisation ρ = arrival rate · s). Heavy-traffic queueing puts the time a
    request spends waiting plus being served at a multiple of s / (1 − ρ); with the fitted
    multiple q = ``queue`` for the 99th percentile (it also absorbs the spread of prompt
    lengths: the p99 request's prefill is longer than the mean one) the bound
    q · s / (1 − ρ) ≤ TTFT gives ρ ≤ 1 − q · s / TTFT. 0 when no load meets it.
    """
    return max(0.0, 1 - queue * prefill_s / ttft_limit_s)


def throughput(case: Case, eff: Efficiencies) -> Throughput | None:
    """Output tokens/s of one instance, or ``None`` when no batch ≥ 1 meets the TPOT limit or
    the prefills cannot meet the TTFT limit at any load."""
    moe = eff.moe if case.is_moe else 1.0
    bw = case.bandwidth * eff.memory * moe
    fl = case.peak_flops * eff.compute(case.precision) * moe
    prefill_s = case.prefill_flops / fl
    p = prefill_s / case.output_tokens
    kv_s = case.kv_bytes_per_token * case.context_mean / bw
    tok_s = case.flops_per_token / fl

    def rate(batch: float) -> tuple[float, bool]:
        t_mem = weights_read(case, batch) / bw + batch * kv_s
        t_cmp = batch * tok_s
        return batch / (max(t_mem, t_cmp) + batch * p), t_mem >= t_cmp

    batch = case.batch_hbm
    tokens_per_s, memory_bound = rate(batch)
    if case.tpot_limit_s is not None:
        offline = tokens_per_s
        limit = case.tpot_limit_s * eff.headroom
        read = case.weights_bytes
        for _ in range(_FIXED_POINT_ROUNDS):
            fixed = read / bw
            by_memory = (limit - fixed) / (kv_s + p) if limit > fixed else 0.0
            batch = min(case.batch_hbm, by_memory, limit / (tok_s + p))
            read = weights_read(case, batch)
        if batch < 1:
            return None
        tokens_per_s, memory_bound = rate(batch)
        tokens_per_s = min(tokens_per_s, eff.load(case.scenario) * offline)
        if case.ttft_limit_s is not None and eff.ttft_queue > 0:
            share = ttft_share(prefill_s, case.ttft_limit_s, eff.ttft_queue)
            if share <= 0:
                return None
            tokens_per_s = min(tokens_per_s, share * case.output_tokens / prefill_s)
    return Throughput(
        tokens_per_s=tokens_per_s,
        batch=batch,
        bound="memory" if memory_bound else "compute",
        prefill_s=prefill_s,
    )
