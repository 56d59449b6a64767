"""Report figures: ROC curves in rank order with their AUCs, loss curves against each method's trivial
level (checked here against the loss itself on degenerate input), and the embedding map's choices."""

import math
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from octbench import figures, report
from octbench.backbone import create_backbone
from octbench.leaderboard import RunResult
from octbench.method import MethodOptions
from octbench.registry import discover_methods

REGISTRY = discover_methods()


class Constant(nn.Module):
    """A network that has learned nothing: the same output for every image."""

    def __init__(self, dim: int, value: float = 0.3):
        super().__init__()
        self.dim, self.value = dim, value

    def forward(self, x):
        return torch.full((len(x), self.dim), self.value)


def build(name: str):
    torch.manual_seed(0)
    backbone, dim = create_backbone("resnet18")
    return REGISTRY[name](backbone, dim, MethodOptions()), dim


def views(batch_size: int, n: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(batch_size, 1, 32, 32, generator=generator) for _ in range(n)]


@pytest.mark.parametrize("batch_size", [8, 32])
def test_simclr_sits_at_ln_2b_minus_1_when_every_image_looks_the_same(batch_size):
    method, dim = build("simclr")
    method.backbone = Constant(dim)
    method.train()
    loss = method.training_loss(views(batch_size), {})
    assert method.trivial_loss(batch_size) == pytest.approx(math.log(2 * batch_size - 1))
    assert loss.item() == pytest.approx(method.trivial_loss(batch_size), rel=1e-5)


@pytest.mark.parametrize("batch_size", [8, 32])
def test_nnclr_sits_at_ln_2b_minus_1_when_embeddings_neighbours_and_predictions_are_one_vector(batch_size):
    method, dim = build("nnclr")
    method.backbone, method.projection_head = Constant(dim), Constant(128)
    method.prediction_head = nn.Identity()
    method.memory_bank.bank.fill_(0.3)  # the support set (random at first) holds only that vector too
    loss = method.training_loss(views(batch_size), {})
    assert method.trivial_loss(batch_size) == pytest.approx(math.log(2 * batch_size - 1))
    assert loss.item() == pytest.approx(method.trivial_loss(batch_size), rel=1e-5)


def test_moco_sits_at_ln_k_plus_1_once_its_queue_holds_only_identical_keys():
    method, dim = build("moco-v2")
    method.backbone, method.key_backbone = Constant(dim), Constant(dim)
    method.train()
    batch_size, queue = 256, method.criterion.memory_bank.size[0]
    assert queue == 1024  # 8 batches of the default 128, sized for its 120-step schedule
    for _ in range(queue // batch_size):  # fill the queue (it starts with random keys)
        method.training_loss(views(batch_size), {})
    loss = method.training_loss(views(batch_size), {})
    assert method.trivial_loss(batch_size) == pytest.approx(math.log(1025))
    assert loss.item() == pytest.approx(method.trivial_loss(batch_size), rel=1e-5)


def test_swav_sits_at_ln_prototypes_with_uniform_scores():
    method, dim = build("swav")
    method.backbone = Constant(dim)
    with torch.no_grad():  # every prototype the same: each B-scan scores alike on all of them
        for layer in method.prototypes.heads:
            layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
            layer.bias.fill_(0.1)
    method.train()
    loss = method.training_loss(views(16), {})
    assert method.trivial_loss(16) == pytest.approx(math.log(256))
    assert loss.item() == pytest.approx(method.trivial_loss(16), rel=1e-5)


def test_dino_sits_at_ln_output_dim_with_a_uniform_student():
    method, _ = build("dino")
    method.student_head = Constant(2048, 0.0)  # uniform student output; the teacher stays a real network
    method.train()
    loss = method.training_loss(views(8), {})
    assert method.trivial_loss(8) == pytest.approx(math.log(2048))
    assert loss.item() == pytest.approx(method.trivial_loss(8), rel=1e-5)


@pytest.mark.parametrize("name", ["byol", "simsiam", "random-init"])
def test_methods_without_a_known_level_say_none(name):
    method, _ = build(name)
    assert method.trivial_loss(16) is None


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn, kept open for inspection instead of saved."""
    kept = []
    monkeypatch.setattr(figures, "save", lambda fig, path: kept.append(fig))
    return kept


def test_roc_curves_in_rank_order_with_distinct_neighbours_and_the_auc_of_each_curve(drawn):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=(200, 2)).astype(float)
    y_true[:20, 1] = np.nan  # not in the second label's test set
    cells = {f"method-{i}": (y_true, y_true * (2 - 0.1 * i) + rng.normal(size=y_true.shape)) for i in range(13)}
    figures.roc_curves(cells, ["IRF", "VD"], Path("unused.png"), title="t")
    ax = drawn[0].axes[1]
    lines = ax.get_lines()[:13]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    scored = ~np.isnan(y_true[:, 1])
    for i, (text, (_, y_score)) in enumerate(zip(texts, cells.values())):
        assert text == f"{i + 1}. method-{i}  {roc_auc_score(y_true[scored, 1], y_score[scored, 1]):.3f}"
    colours = [mcolors.to_hex(line.get_color()) for line in lines]
    styles = [line.get_linestyle() for line in lines]
    assert all(colours[i] != colours[i + 1] for i in range(12))
    assert len(set(colours[:10])) == 10 and styles[:10] == ["-"] * 10 and styles[10:] == ["--"] * 3
    assert colours[10] == colours[0]  # colours repeat past ten, told apart by the line style


def test_a_loss_curve_at_its_trivial_level_is_marked_in_red(drawn):
    steps = np.arange(0, 100, 5)
    logs = {"collapsed": pd.DataFrame({"step": steps, "train_loss": 7.0 - np.exp(-steps / 10.0) * 2}),
            "learning": pd.DataFrame({"step": steps, "train_loss": 7.0 - steps / 30.0}),
            "unknown": pd.DataFrame({"step": steps, "train_loss": 1.0 - steps / 300.0})}
    trivial = {"collapsed": 7.05, "learning": 7.05, "unknown": None}
    assert figures.at_trivial_level(logs["collapsed"], 7.05) and not figures.at_trivial_level(logs["learning"], 7.05)
    figures.loss_curves(logs, Path("unused.png"), trivial)
    axes = drawn[0].axes
    assert axes[0].get_title() == "collapsed: at trivial level" and axes[0].title.get_color() == "red"
    assert axes[1].get_title() == "learning" and axes[1].title.get_color() != "red"
    dashed = [line for line in axes[0].get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(7.05)
    assert not [line for line in axes[2].get_lines() if line.get_linestyle() == "--"]


def run_of(label: str, method: str, folder: Path) -> RunResult:
    clinical = [["simclr", 1.0]] if "control" in label else [["eye", 1.0]] if method == "clinical-supcon" else []
    return RunResult(folder, {"method": method, "label": label, "run_id": label, "options": {"clinical": clinical}},
                     pd.DataFrame())


def test_the_embedding_map_shows_the_best_method_a_clinical_supcon_row_and_random_init(tmp_path):
    """The clinical row is one with clinical positives: the control (clinical-supcon without labels)
    ranks above them on the default benchmark and is not what the map is meant to show."""
    rows = [("supervised", "supervised"), ("vicreg", "vicreg"), ("SupCon without labels (control)", "clinical-supcon"),
            ("clinical SupCon (eye)", "clinical-supcon"), ("clinical SupCon (BCVA)", "clinical-supcon"),
            ("random-init", "random-init"), ("raw-pixels", "raw-pixels")]
    first_seed = {}
    for label, method in rows:
        folder = tmp_path / label
        folder.mkdir()
        if method != "raw-pixels":
            (folder / "backbone.pt").write_bytes(b"")
        first_seed[label] = run_of(label, method, folder)
    shown = report.embedding_runs([label for label, _ in rows], first_seed)
    assert [run.label for run in shown] == ["vicreg", "clinical SupCon (eye)", "random-init"]
    best_is_supcon = report.embedding_runs(["clinical SupCon (BCVA)", "vicreg", "random-init"], first_seed)
    assert [run.label for run in best_is_supcon] == ["clinical SupCon (BCVA)", "random-init"]


def test_the_embedding_subsample_keeps_each_patient_and_biomarker_share():
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"patient": np.repeat(np.arange(30), 100), "IRF": rng.integers(0, 2, 3000)})
    sample = report.stratified_subsample(rows, ["patient", "IRF"], 1000)
    assert abs(len(sample) - 1000) <= 30
    assert sample["patient"].nunique() == 30
    assert sample["IRF"].mean() == pytest.approx(rows["IRF"].mean(), abs=0.02)
    assert report.stratified_subsample(rows.head(50), ["patient", "IRF"], 1000).equals(rows.head(50))


def test_roc_curves_average_the_seeds_scores_per_b_scan():
    def run(scores):
        predictions = pd.DataFrame({"sample_id": ["a", "b", "a", "b"], "patient": [1, 2, 1, 2],
                                    "biomarker": ["IRF", "IRF", "VD", "VD"], "y_true": [1, 0, 0, 1],
                                    "y_score": scores})
        return RunResult(Path("."), {}, predictions)

    y_true, mean = report.seed_mean_scores([run([0.2, 0.4, 0.6, 0.8]), run([0.4, 0.0, 0.0, 1.0])], ["IRF", "VD"])
    np.testing.assert_allclose(y_true, [[1, 0], [0, 1]])
    np.testing.assert_allclose(mean, [[0.3, 0.3], [0.2, 0.9]])
