"""A SweepSpec for tests that need one without running a sweep."""

from search_spaces import load_space
from sweeps.spec import DataRef, Objective, Provenance, SearchSettings, SpaceSpec, SweepSpec
from trainer.config import TrainConfig


def spec_for(objectives=(("pairs_acc", "max"),), space: str = "bimodal_p", **config) -> SweepSpec:
    return SweepSpec(
        name="test", storage="/nonexistent", space=SpaceSpec.of(load_space(space)), search=SearchSettings(),
        objectives=tuple(Objective(metric=m, mode=d) for m, d in objectives), base_config=TrainConfig(**config),
        data=DataRef(data_root="/nonexistent", data_hash="abc"), provenance=Provenance(code_version="test"),
    )
