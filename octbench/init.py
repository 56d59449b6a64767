"""Pretrained starting points: `--init SOURCE` (or `[pretrain] init = "..."`, or an entry's own
`init`) loads weights into the backbone before the method is built, so every method starts from
them: the baselines too (random-init is then "those weights, probed frozen"), and the momentum
copies of MoCo, BYOL and DINO, which are made from the loaded backbone.

SOURCE is one of
    a weights file      .pt / .pth (torch.save, read as tensors only) or .safetensors; a training
                        checkpoint that wraps its weights as {"state_dict": ...} or {"model": ...} too
    a run folder        another run's record (its backbone.pt): go on from what that run learned
    timm:<model tag>    timm's pretrained weights, from the local Hugging Face cache only

Nothing is ever downloaded. ImageNet-style weights take 3 input channels and B-scans have 1: the
first convolution is summed over its input channels (timm's adapt_input_conv), so a gray image gives
the features the RGB network gives it repeated on 3 channels. Classifier weights are dropped (the
backbone has none); every other weight must fit the backbone exactly, or the run is refused before
anything trains.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub.constants
import timm
import torch
from safetensors.torch import load_file
from timm.models import adapt_input_conv

from octbench.backbone import create_backbone
from octbench.errors import OctbenchError, closest
from octbench.record import BACKBONE_FILE

TIMM_PREFIX = "timm:"
CLASSIFIER_PREFIXES = ("fc.", "head.", "classifier.")  # timm's classifier names; num_classes=0 has none
WRAPPERS = ("state_dict", "model")  # how training scripts (timm's train.py, torchvision's) wrap weights
FORMS = "a .pt, .pth or .safetensors weights file, a run folder (results/runs/<run-id>) or timm:<model tag>"


@dataclass(frozen=True)
class StartingPoint:
    """Weights resolved for one backbone, checked to fit it, ready to load."""
    source: str  # as given: a path or timm:<tag>
    file: str  # what was read: the weights file, or the Hugging Face cache for a timm tag
    sha256: str  # of the file's bytes; for a timm tag, of its tensors (timm reads its cache itself)
    first_conv: str  # "summed 3 -> 1 channels" or "as is"
    state: dict = field(repr=False, compare=False)

    @property
    def timm_tag(self) -> str:
        return self.source[len(TIMM_PREFIX):] if self.source.startswith(TIMM_PREFIX) else ""

    def key(self) -> dict:
        """What a run's identity takes from it: the weights' content (and the timm tag), not where the
        file lies, so the same weights reached by two paths make one run, as a cohort's files do."""
        return {"sha256": self.sha256, **({"timm": self.timm_tag} if self.timm_tag else {})}

    def record(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "first_conv": self.first_conv, "file": self.file}

    def short(self) -> str:
        """For run folder names: the timm tag, else the start of the file's hash."""
        tag = "".join(ch for ch in self.timm_tag.lower() if ch.isalnum() or ch == ".")
        return tag or self.sha256[:8]

    def shown(self) -> str:
        """For labels: the timm source, or the file's (or run folder's) name."""
        if self.timm_tag:
            return self.source
        path = Path(self.file)
        return path.parent.name if path.name == BACKBONE_FILE else path.name


def starting_point(source: str, backbone: str) -> StartingPoint | None:
    """The weights `source` names, fitted to `backbone`; None for a random start (source "").
    Read once per process for each file version: a compare asks for every cell."""
    if not source:
        return None
    if source.startswith(TIMM_PREFIX):
        return resolved(source, backbone, ("timm", hf_cache_folder()))
    path = weights_path(source)
    stat = path.stat()
    return resolved(source, backbone, (str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def resolved(source: str, backbone: str, stamp: tuple) -> StartingPoint:
    """`stamp`: (path, mtime, size) of a file, or ("timm", the cache folder) for a tag."""
    if stamp[0] == "timm":
        state, file = timm_weights(source[len(TIMM_PREFIX):]), stamp[1]
        sha256, where = tensors_sha256(state), f"{source} (from {file})"
    else:
        file = where = stamp[0]
        state, sha256 = read_weights(Path(file)), file_sha256(Path(file))
    state, first_conv = fitted(state, backbone, where)
    return StartingPoint(source, file, sha256, first_conv, state)


def weights_path(source: str) -> Path:
    """The weights file a path names: itself, or a run folder's backbone.pt."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / BACKBONE_FILE).is_file():
            raise OctbenchError(f"init {source}: the folder holds no {BACKBONE_FILE}, so it is no run record; "
                                f"--init (or [pretrain] init) takes {FORMS}")
        path = path / BACKBONE_FILE
    elif not path.is_file():
        raise OctbenchError(f"init weights {source} do not exist; --init (or [pretrain] init) takes {FORMS}")
    return path.resolve()


def read_weights(path: Path) -> dict:
    """A state dict from a file, as tensors: no pickled code ever runs."""
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # a truncated file, another format
            raise OctbenchError(f"{path} is not a readable .safetensors file ({type(error).__name__}: "
                                f"{first_line(error)})") from None
    try:  # timm's train.py saves its arguments beside the weights: plain data, allowed
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with code in it, a truncated file, another format
        raise OctbenchError(f"{path} cannot be loaded as weights ({type(error).__name__}: {first_line(error)}); "
                            "octbench reads tensors only: a state dict saved with torch.save (.pt, .pth) "
                            "or a .safetensors file") from None
    return state_dict_of(loaded, path)


def state_dict_of(loaded, path: Path) -> dict:
    """The weights of a state dict or of a checkpoint that wraps one."""
    for wrapper in WRAPPERS:
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
            break
    if not (isinstance(loaded, dict) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values())):
        keys = f" (its keys: {few(list(loaded))})" if isinstance(loaded, dict) and loaded else ""
        raise OctbenchError(f"{path} holds no state dict of names and tensors{keys}; save model.state_dict(), "
                            "or a checkpoint with it under 'state_dict' or 'model'")
    if all(key.startswith("module.") for key in loaded):  # saved from a DistributedDataParallel wrapper
        loaded = {key[len("module."):]: value for key, value in loaded.items()}
    return dict(loaded)


def fitted(state: dict, backbone: str, where: str) -> tuple[dict, str]:
    """`state` as the one-channel backbone takes it, and how its first convolution was converted."""
    expected = create_backbone(backbone)[0].state_dict()
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(CLASSIFIER_PREFIXES)}
    for key, value in expected.items():  # a counter, not a weight: PyTorch fills it in for old files too
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    state, first_conv = one_channel(state, expected)
    check_fit(state, expected, backbone, where)
    return state, first_conv


def one_channel(state: dict, expected: dict) -> tuple[dict, str]:
    """Convolutions taking 3x the channels the backbone's take (RGB stems), summed over colour."""
    state, converted = dict(state), []
    for key, weight in state.items():
        target = expected.get(key)
        if (target is None or weight.ndim != 4 or target.ndim != 4 or weight.shape[0] != target.shape[0]
                or weight.shape[1] != 3 * target.shape[1]):
            continue
        state[key] = adapt_input_conv(1, weight)
        converted.append(f"summed {weight.shape[1]} -> {target.shape[1]} channels")
    return state, "; ".join(converted) or "as is"


def check_fit(state: dict, expected: dict, backbone: str, where: str) -> None:
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [f"{key} {tuple(state[key].shape)}, not {tuple(expected[key].shape)}" for key in state
                if key in expected and state[key].shape != expected[key].shape]
    problems = [f"{what}: {few(keys)}" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)) if keys]
    if problems:
        raise OctbenchError(f"{where}: these weights do not fit the backbone {backbone} ({'; '.join(problems)}); "
                            f"pass weights of a {backbone}, or set the backbone they were saved from "
                            "(--set backbone=NAME)")


def few(items: list, shown: int = 3) -> str:
    rest = len(items) - shown
    return ", ".join(map(str, items[:shown])) + (f" and {rest} more" if rest > 0 else "")


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_sha256(state: dict) -> str:
    """A hash of the weights themselves: names, types, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# timm tags: timm's pretrained weights, as timm.create_model(tag, pretrained=True) loads them, with
# the Hugging Face hub offline.

def hf_cache_folder() -> str:
    """Where huggingface_hub keeps downloads ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    return str(huggingface_hub.constants.HF_HUB_CACHE)


@contextlib.contextmanager
def hub_offline():
    """HF_HUB_OFFLINE=1 for the call. huggingface_hub reads the variable once, when it is imported,
    so its constant is set as well; both are restored after."""
    before_env, before = os.environ.get("HF_HUB_OFFLINE"), huggingface_hub.constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], huggingface_hub.constants.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE = before
        if before_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before_env


def timm_weights(tag: str) -> dict:
    """The state dict of timm's pretrained `tag` (e.g. resnet18.a1_in1k), read from the local cache."""
    architecture = tag.split(".")[0]
    if not timm.is_model(architecture):
        raise OctbenchError(f"init timm:{tag}: timm has no model {architecture!r}"
                            f"{closest(architecture, timm.list_models())}; e.g. timm:resnet18.a1_in1k")
    tags = timm.list_pretrained(f"{architecture}.*")
    if not tags or (tag != architecture and tag not in tags):  # else timm would build it randomly initialised
        listed = ", ".join(tags[:6]) or "none"
        raise OctbenchError(f"init timm:{tag}: timm knows no pretrained weights of that name; those of "
                            f"{architecture}: {listed}")
    refuse_a_download(tag, timm.models.get_pretrained_cfg(tag))
    with hub_offline():
        try:
            model = timm.create_model(tag, pretrained=True)
        except OSError:  # huggingface_hub's LocalEntryNotFoundError, OfflineModeIsEnabled
            raise OctbenchError(f"init timm:{tag}: its weights are not in the local Hugging Face cache "
                                f"{hf_cache_folder()}; octbench never downloads: fetch "
                                f"them once where there is a network (python -c \"import timm; timm.create_model("
                                f"'{tag}', pretrained=True)\"), point HF_HUB_CACHE at a cache that holds them, "
                                "or pass a weights file") from None
    return model.state_dict()


def refuse_a_download(tag: str, config) -> None:
    """Weights timm would fetch by URL (no Hugging Face copy) must already be in torch's hub cache:
    only the hub has an offline mode."""
    if config.hf_hub_id or not config.url:
        return
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(config.url).path)  # as torch.hub
    if not cached.is_file():
        raise OctbenchError(f"init timm:{tag}: its weights are not in the local torch hub cache {cached.parent} "
                            f"(timm fetches them from {config.url}); octbench never downloads: put the file "
                            "there, or pass a weights file")
