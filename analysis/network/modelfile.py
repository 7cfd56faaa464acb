"""One ``.npz`` file per trained network: weights, architecture, seed, device, accuracy.

Why: a result must be rerunnable and auditable. The file holds everything ``forward`` needs
(weights and the exact branch index arrays, not just a layout name), the NL/theta/variant, the
training seed and settings, the device parameters used, and the accuracies. It is a plain numpy
``.npz`` (zip of ``.npy``; readable without dendrolab, ``np.load(path)``), loaded with
``allow_pickle=False``:

=====================  ===================================================================
array                  meaning
=====================  ===================================================================
``w1``, ``w2``         float32 weights (n_in, n_hidden), (n_hidden, n_out), input order of
                       the layout's flattening
``branch_index``       int64, the hidden branches' input indices, concatenated
``branch_offsets``     int64, start of every branch in ``branch_index`` plus the total
``meta``               0-d unicode: JSON with ``format``, ``version``, ``layout``
                       (name, output_blocks), ``config`` (n_hidden, n_out, nl, a, theta,
                       variant), ``seed``, ``device`` (``DeviceModel.to_dict()`` or null),
                       ``metrics`` (accuracies, training settings ...), ``dendrolab``
=====================  ===================================================================
"""

from __future__ import annotations

import json
import os
import zipfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from analysis.network.devices import DeviceModel
from analysis.network.layout import BranchLayout
from analysis.network.model import NetConfig, Params
from dendrolab.errors import DendrolabError, clip

FORMAT = "dendrolab-network-model"
VERSION = 1


class ModelFileError(DendrolabError):
    """A model file is missing, unreadable or not in the documented layout."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def save_model(path: str | os.PathLike[str], params: Params, cfg: NetConfig, *, seed: int,
               device: DeviceModel | None = None, metrics: dict[str, Any] | None = None
               ) -> Path:
    """Write the model file at ``path`` (written whole, then renamed into place)."""
    from dendrolab import __version__

    path = Path(path)
    if params.w1.shape != (cfg.n_in, cfg.n_hidden) or params.w2.shape != (cfg.n_hidden,
                                                                          cfg.n_out):
        raise ModelFileError(f"weights {params.w1.shape}, {params.w2.shape} do not match "
                             f"{cfg.describe()}")
    meta = {
        "format": FORMAT, "version": VERSION,
        "layout": {"name": cfg.layout.name, "output_blocks": cfg.layout.output_blocks},
        "config": {"n_hidden": cfg.n_hidden, "n_out": cfg.n_out, "nl": cfg.nl, "a": cfg.a,
                   "theta": cfg.theta, "variant": cfg.variant},
        "seed": int(seed),
        "device": None if device is None else device.to_dict(),
        "metrics": metrics or {},
        "dendrolab": __version__,
    }
    sizes = cfg.layout.branch_sizes
    arrays = {
        "w1": np.asarray(params.w1, dtype=np.float32),
        "w2": np.asarray(params.w2, dtype=np.float32),
        "branch_index": np.concatenate(cfg.layout.hidden_branches).astype(np.int64),
        "branch_offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "meta": np.array(json.dumps(_jsonable(meta), sort_keys=True)),
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_model(path: str | os.PathLike[str]) -> tuple[Params, NetConfig, dict[str, Any]]:
    """(params, cfg, meta) from a model file; ``meta["device"]`` is a DeviceModel or None.

    Any problem -- missing file, not an .npz, missing arrays, inconsistent shapes -- is a one-line
    ``ModelFileError``.
    """
    p = Path(path)
    name = clip(str(p), 120)
    if not p.is_file():
        raise ModelFileError(f"{name}: no such model file")
    try:
        if not zipfile.is_zipfile(p):
            raise ModelFileError(f"{name}: not a dendrolab model file (not an .npz archive)")
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{name}: not a dendrolab model file (.npz): "
                             f"{clip(' '.join(str(exc).split()) or type(exc).__name__, 80)}"
                             ) from None
    missing = [k for k in ("w1", "w2", "branch_index", "branch_offsets", "meta")
               if k not in arrays]
    if missing:
        raise ModelFileError(f"{name}: not a dendrolab model file (missing "
                             f"{', '.join(missing)})")
    try:
        meta = json.loads(str(arrays["meta"]))
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{name}: format {meta.get('format')!r}, expected {FORMAT!r}")
        if int(meta.get("version", 0)) > VERSION:
            raise ModelFileError(f"{name}: model file version {meta['version']} is newer "
                                 f"than this dendrolab reads ({VERSION})")
        idx, off = arrays["branch_index"], arrays["branch_offsets"]
        if off.ndim != 1 or off.size < 2 or off[0] != 0 or off[-1] != idx.size:
            raise ModelFileError(f"{name}: branch_offsets do not index branch_index")
        branches = tuple(idx[a:b] for a, b in pairwise(off))
        layout = BranchLayout(meta["layout"]["name"], branches,
                              int(meta["layout"]["output_blocks"]))
        c = meta["config"]
        cfg = NetConfig(layout, int(c["n_hidden"]), int(c["n_out"]), float(c["nl"]),
                        float(c["theta"]), str(c["variant"]))
        params = Params(arrays["w1"].astype(np.float32), arrays["w2"].astype(np.float32))
        if params.w1.shape != (cfg.n_in, cfg.n_hidden) or params.w2.shape != (
                cfg.n_hidden, cfg.n_out):
            raise ModelFileError(f"{name}: weights {params.w1.shape}, {params.w2.shape} do not "
                                 f"match the stored architecture {cfg.describe()}")
        device = None if meta.get("device") is None else DeviceModel.from_dict(meta["device"])
    except ModelFileError:
        raise
    except (DendrolabError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{name}: bad model file contents: "
                             f"{clip(' '.join(str(exc).split()), 100)}") from None
    meta["device"] = device
    return params, cfg, meta
