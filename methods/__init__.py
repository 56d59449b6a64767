"""octbench's methods: one file per pretraining method, found by octbench.registry."""
