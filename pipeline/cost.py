"""What a job cost: each phase run's measured usage, the job's share of runs it shared, and a price table.

A run records its wall time, the CPU seconds of the worker thread that ran it (torch runs one thread per worker,
`pipeline.backends.threads`) and, on a GPU, the GPU seconds (the run's wall time: the GPU is held for the whole
run) and the GPU's name. A job's cost is the sum over its runs of the run's usage times the job's share of it: a
batch's avatar run serves every job with that person photo, its wardrobe run every job with that garment photo,
so each of those jobs counts 1/k of it (the split is written next to the figures). The price table turns seconds
into US dollars; on the CPU default no CPU price is set, so the cost is 0 and the manifest says why rather than
inventing a figure.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Modal's list prices per second. H100, A100-80GB, L40S, L4, T4 and the CPU core agree with modal.com/pricing as
# a 2026-05-07 summary quotes it (PRICES_DATE; no live web here to read the page itself); B200, H200, A100-40GB and
# A10G are from an earlier reading and unconfirmed. Override any of them with DROPFIT_GPU_PRICES_PER_S /
# DROPFIT_CPU_CORE_PRICE_PER_S (infra/settings.py).
PRICES_DATE = "2026-05-07"
MODAL_GPU_PER_S: dict[str, float] = {
    "B200": 0.001736, "H200": 0.001261, "H100": 0.001097, "A100-80GB": 0.000694, "A100-40GB": 0.000583,
    "L40S": 0.000542, "A10G": 0.000306, "L4": 0.000222, "T4": 0.000164,
}
MODAL_CPU_CORE_PER_S = 0.0000131  # one physical core (2 vCPU)


class Usage(BaseModel):
    """One phase run's measured use of the machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_s: float
    cpu_s: float  # CPU time of the worker thread that ran the phase
    gpu_s: float = 0.0  # the run's wall time when it ran on a GPU, else 0
    gpu: str | None = None  # the GPU's name as CUDA reports it (e.g. "NVIDIA H100 80GB HBM3")


class Prices(BaseModel):
    """Per-second prices; `cpu_core_per_s` None means no CPU price is configured (the local default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_per_s: dict[str, float] = Field(default_factory=lambda: dict(MODAL_GPU_PER_S))
    cpu_core_per_s: float | None = None
    date: str = PRICES_DATE

    def gpu_price(self, gpu: str | None) -> float | None:
        """The price of the GPU whose CUDA name is `gpu` ("NVIDIA A100-SXM4-80GB"): the table key all of whose
        parts ("A100", "80GB") are words of the name, the most specific when several are."""
        if gpu is None:
            return None
        words = set(gpu.upper().replace(" ", "-").split("-"))
        found = [key for key in self.gpu_per_s if set(key.upper().split("-")) <= words]
        return self.gpu_per_s[max(found, key=len)] if found else None


class PhaseCost(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    share: float  # the part of the run counted for this job (1 / the jobs that shared it)
    cpu_s: float
    gpu_s: float
    usd: float


class JobCost(BaseModel):
    """results/{job_id}/manifest.json `cost`: this job's share of what its runs used, and its price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_s: float
    gpu_s: float
    usd: float
    phases: dict[str, PhaseCost]
    split: str  # how shared runs were divided
    priced: str  # which prices were used, or why the figure is 0


class BatchCost(BaseModel):
    """results/batches/{batch_id}/report.json `cost`: the sum over the batch's succeeded jobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    jobs: int
    cpu_s: float
    gpu_s: float
    usd: float
    priced: str


def job_cost(usage: dict[str, Usage | None], shares: dict[str, float], split: str, prices: Prices) -> JobCost:
    """The job's cost from its runs' `usage` (None: a run from before usage was recorded, counted as 0)."""
    phases: dict[str, PhaseCost] = {}
    unpriced: set[str] = set()
    for name, used in usage.items():
        share = shares.get(name, 1.0)
        if used is None:
            phases[name] = PhaseCost(share=share, cpu_s=0.0, gpu_s=0.0, usd=0.0)
            unpriced.add(f"{name} has no usage on record")
            continue
        usd = 0.0
        if prices.cpu_core_per_s is not None:
            usd += used.cpu_s * prices.cpu_core_per_s
        if used.gpu_s:
            price = prices.gpu_price(used.gpu)
            if price is None:
                unpriced.add(f"no price for GPU {used.gpu!r}")
            else:
                usd += used.gpu_s * price
        phases[name] = PhaseCost(share=round(share, 6), cpu_s=round(used.cpu_s * share, 4),
                                 gpu_s=round(used.gpu_s * share, 4), usd=round(usd * share, 8))
    return JobCost(cpu_s=round(sum(p.cpu_s for p in phases.values()), 4),
                   gpu_s=round(sum(p.gpu_s for p in phases.values()), 4),
                   usd=round(sum(p.usd for p in phases.values()), 8), phases=phases, split=split,
                   priced=priced_as(prices, sorted(unpriced)))


def priced_as(prices: Prices, gaps: list[str] | tuple[str, ...] = ()) -> str:
    """One sentence: the prices behind a figure, and what it leaves out."""
    if prices.cpu_core_per_s is None:
        said = "no CPU price is configured (the local default), so CPU time costs 0; GPU time at the table's prices"
    else:
        said = f"CPU at ${prices.cpu_core_per_s:g} per core-second; GPU time at the table's prices"
    said += f" (prices of {prices.date}; override with DROPFIT_CPU_CORE_PRICE_PER_S, DROPFIT_GPU_PRICES_PER_S)"
    return said + (f"; not priced: {', '.join(gaps)}" if gaps else "")


def batch_cost(costs: list[JobCost], prices: Prices) -> BatchCost:
    return BatchCost(jobs=len(costs), cpu_s=round(sum(c.cpu_s for c in costs), 4),
                     gpu_s=round(sum(c.gpu_s for c in costs), 4), usd=round(sum(c.usd for c in costs), 8),
                     priced=priced_as(prices))
