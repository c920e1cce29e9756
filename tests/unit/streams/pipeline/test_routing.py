from __future__ import annotations

import pytest

from inference.base import ModelSpec
from model_registry.types import Routing
from streams.pipeline.core import InferencePipeline
from streams.pipeline.routing import choose_variant, in_shadow_sample
from streams.pipeline.serving import LoadedVersion, ServingSet
from streams.settings import Settings


@pytest.mark.parametrize("weight", [0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
def test_challenger_share_matches_weight_over_10000_keys(weight):
    keys = [f"camera-{i}" for i in range(10_000)]
    share = sum(choose_variant(k, "clf", weight, "salt") == "challenger" for k in keys) / len(keys)
    # binomial standard deviation at n=10,000 is at most 0.005: 4 sigma
    assert share == pytest.approx(weight, abs=0.02)


def test_sticky_per_key_and_monotonic_in_weight():
    for key in (f"cam-{i}" for i in range(500)):
        first = choose_variant(key, "clf", 0.3, "s")
        assert all(choose_variant(key, "clf", 0.3, "s") == first for _ in range(3))
        if first == "challenger":  # raising the weight never moves a key back to champion
            assert choose_variant(key, "clf", 0.6, "s") == "challenger"


def test_models_and_salts_split_independently():
    keys = [f"cam-{i}" for i in range(2000)]
    a = [choose_variant(k, "m1", 0.5, "s") for k in keys]
    b = [choose_variant(k, "m2", 0.5, "s") for k in keys]
    assert a != b


def test_shadow_sample_rate():
    events = [f"e{i}" for i in range(10_000)]
    share = sum(in_shadow_sample(e, "m", 0.25, "s") for e in events) / len(events)
    assert share == pytest.approx(0.25, abs=0.02)


# --- the pipeline's routing of events (InferencePipeline._plan) ---------------------------------------
def _pipeline(challenger: bool, shadow: bool, routing: Routing) -> InferencePipeline:
    spec = ModelSpec("classifier", "classification", 32, ("a", "b"), "w.pt")

    def version(v: str) -> LoadedVersion:
        return LoadedVersion("clf", v, spec, runner=None)  # type: ignore[arg-type]  # routing only

    serving = ServingSet(
        "clf", version("1"), version("2") if challenger else None, version("3") if shadow else None, routing
    )

    class Catalog:
        def serving(self, name: str) -> ServingSet | None:
            return serving if name == "clf" else None

        def replacement(self, name: str, variant: str) -> LoadedVersion | None:
            return None

    return InferencePipeline(Settings(models=("clf",), ab_salt="s"), Catalog(), outputs=None)  # type: ignore[arg-type]


def _event(source: str, i: int) -> dict:
    return {"event_id": f"{source}-e{i}", "source_id": source, "attributes": {}}


def test_pipeline_routes_sticky_per_source():
    pipeline = _pipeline(challenger=True, shadow=False, routing=Routing(challenger_weight=0.2))
    try:
        by_source = {
            source: {
                (v.version, variant) for i in range(5) for v, variant in pipeline._plan(_event(source, i))
            }
            for source in (f"cam-{n}" for n in range(2000))
        }
    finally:
        pipeline.close()
    assert all(len(plans) == 1 for plans in by_source.values())  # every event of a source: one variant
    challenger_sources = sum(plans == {("2", "challenger")} for plans in by_source.values())
    assert challenger_sources / 2000 == pytest.approx(0.2, abs=0.04)  # 4 sigma at n=2,000
    assert set().union(*by_source.values()) == {("1", "champion"), ("2", "challenger")}


def test_pipeline_routes_per_event_when_asked():
    pipeline = _pipeline(challenger=True, shadow=False, routing=Routing(0.2, sticky_by="event"))
    try:
        variants = [pipeline._plan(_event("cam-1", i))[0][1] for i in range(10_000)]
    finally:
        pipeline.close()
    assert variants.count("challenger") / 10_000 == pytest.approx(0.2, abs=0.02)


def test_pipeline_shadow_runs_beside_the_served_variant():
    for sample, expected in ((1.0, 1.0), (0.25, 0.25), (0.0, 0.0)):
        pipeline = _pipeline(challenger=False, shadow=True, routing=Routing(0.5, shadow_sample=sample))
        try:
            plans = [pipeline._plan(_event(f"cam-{i % 50}", i)) for i in range(4000)]
        finally:
            pipeline.close()
        assert all(plan[0][1] == "champion" for plan in plans)  # no challenger: weight is moot
        shadowed = [plan for plan in plans if len(plan) == 2]
        assert all(plan[1][0].version == "3" and plan[1][1] == "shadow" for plan in shadowed)
        assert len(shadowed) / 4000 == pytest.approx(expected, abs=0.03)
