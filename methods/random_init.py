"""The floor of every table: the backbone as initialised, never trained."""

from octbench.method import Method


class RandomInit(Method):
    name = "random-init"
    description = "baseline: untrained backbone (the floor)"
    paper = "baseline of every self-supervised benchmark"
    n_views = 0
