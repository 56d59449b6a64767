"""Every registered method really trains; momentum targets move as configured; plug-ins load."""

import math
import textwrap

import pytest
import torch

from octbench.augment import to_normalized_float
from octbench.backbone import create_backbone
from octbench.clinical import parse_clinical_spec
from octbench.errors import OctbenchError
from octbench.method import MethodOptions
from octbench.registry import discover_methods, get_method

REGISTRY = discover_methods()
TRAINED = sorted(name for name, cls in REGISTRY.items() if cls.n_views > 0)
DISTINCT = TRAINED
MOMENTUM = sorted(name for name, cls in REGISTRY.items() if cls.momentum is not None)


COLUMNS = ["BCVA", "CST", "eye", "patient"]


def build(name: str, seed: int = 0, **settings):
    torch.manual_seed(seed)
    cls = REGISTRY[name]
    clinical = parse_clinical_spec(cls.default_clinical, COLUMNS) if cls.takes_clinical else ()
    backbone, dim = create_backbone("resnet18")
    return cls(backbone, dim, MethodOptions(clinical=clinical, settings=tuple(sorted(settings.items()))))


def tiny_batch(n: int = 16, size: int = 32, seed: int = 0, n_labels: int = 3) -> dict:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size), generator=generator, dtype=torch.uint8)
    return {"image": to_normalized_float(images),
            "labels": torch.randint(0, 3, (n, n_labels), generator=generator),  # clinical class ids
            "biomarkers": torch.randint(0, 2, (n, 6), generator=generator).float()}


def train_steps(method, batch: dict, steps: int, fixed_views: bool) -> list[float]:
    n_labels = len(getattr(method, "label_weights", []))
    batch = dict(batch, labels=batch["labels"][:, :n_labels])
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    method.train()
    torch.manual_seed(1)
    views = [method.augmentation(batch["image"]) for _ in range(max(method.n_views, 1))]
    losses = []
    for step in range(steps):
        method.before_step(step, steps)
        if not fixed_views:
            views = [method.augmentation(batch["image"]) for _ in views]
        loss = method.training_loss(views, batch)
        optimizer.zero_grad()
        loss.backward()
        method.after_backward(step, steps)
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_the_compared_families_are_registered():
    expected = {"simclr", "moco-v2", "byol", "barlow-twins", "vicreg", "simsiam", "nnclr", "dino", "swav",
                "clinical-supcon", "random-init", "supervised", "raw-pixels"}
    assert expected <= set(REGISTRY)


@pytest.mark.parametrize("name", TRAINED)
def test_two_training_steps_give_finite_losses_and_change_the_backbone(name):
    method = build(name)
    before = [p.detach().clone() for p in method.backbone.parameters()]
    losses = train_steps(method, tiny_batch(), steps=2, fixed_views=False)
    assert all(math.isfinite(loss) for loss in losses), losses
    # The probed backbone must move (directly, or through the EMA for a momentum teacher).
    assert any(not torch.equal(a, b) for a, b in zip(before, method.backbone.parameters()))


@pytest.mark.parametrize("name", DISTINCT)
def test_loss_falls_on_one_fixed_batch(name):
    # A queue as long as the batch holds real keys from the first step on: a longer one would
    # replace its random start by harder, real negatives during the test, and the loss rise with it.
    queue = {"queue": 16} if "queue" in REGISTRY[name].takes else {}
    losses = train_steps(build(name, **queue), tiny_batch(), steps=40, fixed_views=True)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, f"{name}: loss {first:.4f} -> {last:.4f}"


def test_the_default_benchmark_lists_the_clinical_variants_as_entries():
    from octbench.benchmark import find_entry, load_benchmark

    benchmark = load_benchmark("default")
    eye = find_entry(benchmark, "clinical-supcon-eye")
    assert (eye.method, eye.clinical, eye.label) == ("clinical-supcon", "eye", "clinical SupCon (eye)")
    assert find_entry(benchmark, "clinical-supcon").label == "clinical SupCon (BCVA+CST)"
    assert "clinical-supcon-eye" not in REGISTRY  # an alias, not a method of its own


def test_simclr_term_joins_the_clinical_terms():
    backbone, dim = create_backbone("resnet18")
    options = MethodOptions(clinical=parse_clinical_spec("cst,simclr=0.5", COLUMNS))
    method = REGISTRY["clinical-supcon"](backbone, dim, options)
    assert method.label_weights == [0.5] and method.instance_weight == 0.5
    batch = tiny_batch()
    views = [batch["image"], batch["image"].flip(-1)]
    with torch.no_grad():
        both = method.training_loss(views, dict(batch, labels=batch["labels"][:, :1]))
        method.instance_weight = 0.0
        clinical_only = method.training_loss(views, dict(batch, labels=batch["labels"][:, :1]))
        instance = method.instance_loss(*(method.projection_head(method.backbone(v)) for v in views))
    torch.testing.assert_close(both, clinical_only + 0.5 * instance)


@pytest.mark.parametrize("name", MOMENTUM)
def test_momentum_targets_start_as_copies_and_move_at_the_scheduled_rate(name):
    method = build(name)
    pairs = method.momentum_pairs()
    assert pairs, f"{name} declares a momentum but no (online, target) pairs"
    for online, target in pairs:
        for p, q in zip(online.state_dict().values(), target.state_dict().values()):
            assert torch.equal(p, q)  # the target starts as an exact copy, heads included
        assert not any(q.requires_grad for q in target.parameters())
    with torch.no_grad():  # make online and target differ, then take one EMA step
        for online, _ in pairs:
            for p in online.parameters():
                p.add_(torch.randn_like(p))
    old = [[q.detach().clone() for q in target.parameters()] for _, target in pairs]
    step, total = 30, 100
    rate = method.momentum_at(step, total)
    start, end = method.momentum
    assert start < rate < end
    method.before_step(step, total)
    for (online, target), previous in zip(pairs, old):
        for p, q, q0 in zip(online.parameters(), target.parameters(), previous):
            torch.testing.assert_close(q, rate * q0 + (1 - rate) * p)


def test_momentum_schedule_rises_from_start_to_end():
    method = build(MOMENTUM[0])
    start, end = method.momentum
    assert method.momentum_at(0, 100) == pytest.approx(start)
    assert method.momentum_at(100, 100) == pytest.approx(end)


PLUGIN = '''
import torch
from octbench.method import Method

class MeanShift(Method):
    name = "{name}"
    description = "test plug-in: pulls two views together"
    paper = "none"
    n_views = 2

    def training_loss(self, views, batch):
        a, b = (torch.nn.functional.normalize(self.backbone(v), dim=1) for v in views)
        return (a - b).pow(2).sum(dim=1).mean()
'''


def test_plugin_from_a_folder_is_discovered_and_trains(tmp_path, monkeypatch):
    (tmp_path / "mean_shift.py").write_text(textwrap.dedent(PLUGIN.format(name="mean-shift")))
    cls = get_method("mean-shift", [str(tmp_path)])
    backbone, dim = create_backbone("resnet18")
    losses = train_steps(cls(backbone, dim, MethodOptions()), tiny_batch(), steps=2, fixed_views=False)
    assert all(math.isfinite(loss) for loss in losses)
    monkeypatch.setenv("OCTBENCH_METHODS", str(tmp_path))
    assert "mean-shift" in discover_methods()


def test_a_taken_name_is_refused_naming_both_files(tmp_path):
    (tmp_path / "my_simclr.py").write_text(textwrap.dedent(PLUGIN.format(name="simclr")))
    with pytest.raises(OctbenchError, match=r"'simclr' in .*my_simclr\.py is already taken by .*simclr\.py"):
        discover_methods([str(tmp_path)])


def test_a_file_that_breaks_the_interface_is_refused(tmp_path):
    broken = PLUGIN.format(name="broken").replace("    def training_loss", "    def loss")
    (tmp_path / "broken.py").write_text(textwrap.dedent(broken))
    with pytest.raises(OctbenchError, match=r"broken\.py does not meet the method interface.*training_loss"):
        discover_methods([str(tmp_path)])


@pytest.mark.parametrize("name", ["my_moco", "MyMoco", "moco-", "2moco"])
def test_a_plugin_name_that_run_names_cannot_hold_is_refused(tmp_path, name):
    (tmp_path / "plugin.py").write_text(textwrap.dedent(PLUGIN.format(name=name)))
    with pytest.raises(OctbenchError, match=rf"name {name!r} must be lowercase"):
        discover_methods([str(tmp_path)])


def test_an_option_the_method_does_not_take_is_refused_with_the_list():
    from octbench.benchmark import MethodEntry
    from octbench.identity import method_options

    with pytest.raises(OctbenchError, match=r"'clinical-supcon' does not take the option 'temprature' "
                                            r"\(did you mean 'temperature'\?\); it takes: temperature"):
        method_options(REGISTRY["clinical-supcon"], MethodEntry("clinical-supcon", options=(("temprature", 0.1),)),
                       COLUMNS)
    options = method_options(REGISTRY["clinical-supcon"], MethodEntry("clinical-supcon", options=(("temperature", 1),)),
                             COLUMNS)
    backbone, dim = create_backbone("resnet18")
    assert REGISTRY["clinical-supcon"](backbone, dim, options).temperature == 1.0
