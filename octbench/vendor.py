"""Vendor OCT volumes, read through the OCT field's own reader, eyepy (the `vendor` extra).

    .vol   Heidelberg HEYEX VOL export            eyepy.import_heyex_vol
    .e2e   Heidelberg HEYEX E2E (first volume)    eyepy.import_heyex_e2e
    .xml   Heidelberg HEYEX XML export            eyepy.import_heyex_xml (the XML beside its B-scans)
    .fda   Topcon FDA                             eyepy.import_topcon_fda (needs oct-converter)
    .mat   Duke SD-OCT volume (`images`, ...)     eyepy.import_duke_mat (needs scipy)
    .mhd   RETOUCH volume (oct.mhd + oct.raw)     eyepy.import_retouch, given the folder (needs itk)

Each file is one volume; each of its B-scans becomes one row of the cohort (octbench/images.py),
in eyepy's order, with the intensities eyepy gives (HEYEX VOL through its own display transform,
8-bit; others as stored, which the benchmark's [images] rule maps when they are wider than 8 bits).
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

# suffix -> (format name, eyepy function, what besides eyepy it needs)
VENDOR_FORMATS = {
    ".vol": ("HEYEX VOL", "import_heyex_vol", ""),
    ".e2e": ("HEYEX E2E", "import_heyex_e2e", ""),
    ".xml": ("HEYEX XML", "import_heyex_xml", ""),
    ".fda": ("Topcon FDA", "import_topcon_fda", "oct-converter"),
    ".mat": ("Duke MAT", "import_duke_mat", "scipy"),
    ".mhd": ("RETOUCH MHD", "import_retouch", "itk"),
}
EXTRA_HINT = "pip install 'octbench[vendor]'"
KEPT_VOLUMES = 4  # decoded volumes kept in memory: a cache build reads each file's pages together


class VendorReaderMissing(ValueError):
    """The `vendor` extra (eyepy) or a library one format needs is not installed."""


def is_vendor_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VENDOR_FORMATS


def available() -> dict[str, bool]:
    """Whether each vendor format can be read here (eyepy and the format's own library importable)."""
    def importable(name: str) -> bool:
        try:
            importlib.import_module(name)
        except ImportError:
            return False
        return True

    have_eyepy = importable("eyepy")
    needs = {"oct-converter": "oct_converter", "scipy": "scipy", "itk": "itk"}
    return {suffix: have_eyepy and (not need or importable(needs[need]))
            for suffix, (_, _, need) in VENDOR_FORMATS.items()}


def eyepy_reader(suffix: str):
    name, function, _ = VENDOR_FORMATS[suffix]
    try:
        eyepy = importlib.import_module("eyepy")
    except ImportError:
        raise VendorReaderMissing(f"is a {name} file; reading vendor formats needs eyepy: {EXTRA_HINT}") from None
    return getattr(eyepy, function)


def read_volume_uncached(path: str | Path) -> np.ndarray:
    """(n_bscans, height, width) of the file's volume, as eyepy gives it."""
    path = Path(path)
    suffix = path.suffix.lower()
    reader = eyepy_reader(suffix)
    name, _, need = VENDOR_FORMATS[suffix]
    try:
        volume = reader(path.parent if suffix == ".mhd" else path)  # RETOUCH: the folder holding oct.mhd
        data = np.asarray(volume.data)
    except ImportError as error:
        raise VendorReaderMissing(f"is a {name} file; eyepy reads it with {need or 'a library'} installed "
                                  f"({error})") from None
    except Exception as error:  # a vendor parser fails in its own ways (construct, struct, KeyError ...)
        raise ValueError(f"cannot be read as a {name} file by eyepy ({type(error).__name__}: {error}); is it "
                         "truncated or of another format?") from None
    if data.ndim != 3 or data.shape[0] < 1:
        raise ValueError(f"eyepy read it as an array of shape {data.shape}, not a volume of B-scans")
    return data


_volumes: OrderedDict[str, np.ndarray] = OrderedDict()
_lock = threading.Lock()
_file_locks: dict[str, threading.Lock] = {}


def read_volume(path: str | Path) -> np.ndarray:
    """read_volume_uncached, with the last few volumes kept: the table's expansion and the cache's
    decoding threads ask for one volume many times, and only one of them parses it."""
    key = str(Path(path).resolve())
    with _lock:
        file_lock = _file_locks.setdefault(key, threading.Lock())
    with file_lock:
        with _lock:
            if key in _volumes:
                _volumes.move_to_end(key)
                return _volumes[key]
        data = read_volume_uncached(path)
        with _lock:
            _volumes[key] = data
            while len(_volumes) > KEPT_VOLUMES:
                _volumes.popitem(last=False)
    return data


def page_hash(page: np.ndarray) -> str:
    """sha256 of one B-scan's pixels and shape: vendor files keep their pixels beside headers (a
    RETOUCH .mhd names its .raw), so the file's own bytes would not identify the B-scan."""
    digest = hashlib.sha256(str((page.shape, page.dtype.str)).encode())
    digest.update(np.ascontiguousarray(page).tobytes())
    return digest.hexdigest()
