"""Which network fits my images? The receptive-field analysis of whole model zoos at one input size.

:func:`table` analyses every torchvision classifier (``torchvision.models.list_models(module=
torchvision.models)``, 80 models with torchvision 0.29) and/or a fixed set of timm models at the input
size you give, and returns one row per model: parameters, multiply-adds at that size, the feasible input
sizes, the unproductive spatial layers and the share of parameters and compute in unproductive layers,
the border layer, and whether the analysis is complete. Rows are computed live (with a progress line)
and cached on disk, so the second call is instant. :func:`plot_feasible` draws the feasible ranges of
chosen models with your size as a vertical line. ``rf-widgets zoo --resolution 64`` prints the table.

Choices
-------
- **Verdicts come from** :func:`rf_widgets.analyze` unchanged: ``feasible_min``/``feasible_max`` are its
  ``resolution_range``, ``border_layer`` its ``border_layer``, the shares its ``unproductive_share()``
  (the share of the parameters and of the multiply-adds of the analysed layers that sit in unproductive
  layers, pointwise layers included). Nothing here re-implements a rule.
- **Spatial layer**: a layer that integrates a neighbourhood, a window whose effective kernel exceeds 1 on
  some axis (convolutions and pools), as the analysis marks it (``Analysis.spatial_layers``).
  ``spatial_unproductive`` counts those that are unproductive, ``spatial_layers`` all of them.
- **fits**: the input size lies within ``[feasible_min, feasible_max]`` on every axis: no layer is
  unproductive, and some layer still sees less than the whole image.
- **Models are built without weights**: ``weights=None`` (torchvision) or ``pretrained=False`` (timm),
  under ``torch.device("meta")`` so that no parameter memory is allocated and no random initialisation
  runs; the analysis reads shapes only. Some constructors compute with tensors (torchvision's RegNets turn
  tensors into Python lists); for those only ``torch.empty`` (what layers allocate their parameters with)
  is sent to the meta device. A model that cannot be built or analysed that way is built on the CPU.
  The ``build`` column says which way was used. (The tests compare meta and CPU analyses on a sample
  of every family.)
- **params** is ``sum(p.numel() for p in model.parameters())`` of the built model (shapes are the same on
  every device). **macs** is the count of a forward pass at the input size on the meta device with
  ``torch.utils.flop_counter.FlopCounterMode`` (multiply-adds = FLOPs / 2: convolutions, linear layers,
  matrix products, attention); when the model cannot run at that size (AlexNet at 32, a ViT built for
  224) it is the sum of the layer table's multiply-adds (convolutions and linear layers only), and
  ``macs_source`` says which and ``runs`` is False. ``note`` reports when the two counts disagree.
- **Models are analysed in eval mode** (GoogLeNet and Inception-v3 drop their auxiliary classifiers,
  which only run in training).
- **A model that fails** to build, trace or analyse is a row with ``status`` ``"failed"`` and the reason
  in ``note``; ``"unknown-ops"`` means the analysis finished but some operations have no rule, so the
  fields after them are lower bounds.
- **Cache**: one JSON file per source and input size under ``$RF_WIDGETS_CACHE_DIR`` (default
  ``$XDG_CACHE_HOME/rf_widgets`` or ``~/.cache/rf_widgets``), in a folder named after a hash of the torch,
  torchvision, timm and rf_widgets versions and of rf_widgets' own source files, so any change to the
  analysis or the libraries starts a new cache.

The timm models (:data:`TIMM_MODELS`), grouped by family (the timm module that defines them):
resnet (resnet10t, resnet18, resnet26d, resnet34, resnet50, resnet50d, resnet101, seresnet50,
ecaresnet26t, resnext50_32x4d), resnetv2 (resnetv2_50), efficientnet (efficientnet_b0, efficientnet_b1,
efficientnet_b2, efficientnet_b3, efficientnetv2_rw_s, tf_efficientnetv2_b0, mobilenetv2_100, mixnet_s,
tinynet_a, fbnetc_100, mnasnet_100, semnasnet_100, spnasnet_100, lcnet_050), mobilenetv3
(mobilenetv3_small_100, mobilenetv3_large_100, mobilenetv4_conv_small), convnext (convnext_atto,
convnext_femto, convnext_nano, convnext_tiny), convnextv2 (convnextv2_atto), regnet (regnetx_002,
regnetx_004, regnety_002, regnety_004, regnety_016), densenet (densenet121, densenet169), ghostnet
(ghostnet_100), rexnet (rexnet_100), dla (dla34), cspnet (cspresnet50, cspdarknet53), vovnet
(ese_vovnet19b_dw), byobnet (repvgg_a0), resnest (resnest14d), res2net (res2net50_14w_8s), dpn (dpn68),
vgg (vgg11), inception_v3 (inception_v3), xception_aligned (xception41), hrnet (hrnet_w18_small).

Examples
--------
>>> from rf_widgets import zoo
>>> df = zoo.table(64, models=["resnet18"], progress=False)  # doctest: +SKIP
>>> df.loc[0, ["model", "border_layer", "feasible_min", "feasible_max"]].tolist()  # doctest: +SKIP
['torchvision:resnet18', 'layer4.0.conv2', 97, 435]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from rf_widgets.errors import RFError, shown

__all__ = [
    "CACHE_ENV",
    "COLUMNS",
    "SOURCES",
    "TIMM_MODELS",
    "FeasiblePlot",
    "cache_dir",
    "main",
    "model_specs",
    "parse_count",
    "plot_feasible",
    "table",
]

SOURCES = ("torchvision", "timm", "both")
CACHE_ENV = "RF_WIDGETS_CACHE_DIR"
CACHE_SCHEMA = 1

TIMM_MODELS: tuple[str, ...] = (
    "resnet10t",
    "resnet18",
    "resnet26d",
    "resnet34",
    "resnet50",
    "resnet50d",
    "resnet101",
    "seresnet50",
    "ecaresnet26t",
    "resnext50_32x4d",
    "resnetv2_50",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnetv2_rw_s",
    "tf_efficientnetv2_b0",
    "mobilenetv2_100",
    "mixnet_s",
    "tinynet_a",
    "fbnetc_100",
    "mnasnet_100",
    "semnasnet_100",
    "spnasnet_100",
    "lcnet_050",
    "mobilenetv3_small_100",
    "mobilenetv3_large_100",
    "mobilenetv4_conv_small",
    "convnext_atto",
    "convnext_femto",
    "convnext_nano",
    "convnext_tiny",
    "convnextv2_atto",
    "regnetx_002",
    "regnetx_004",
    "regnety_002",
    "regnety_004",
    "regnety_016",
    "densenet121",
    "densenet169",
    "ghostnet_100",
    "rexnet_100",
    "dla34",
    "cspresnet50",
    "cspdarknet53",
    "ese_vovnet19b_dw",
    "repvgg_a0",
    "resnest14d",
    "res2net50_14w_8s",
    "dpn68",
    "vgg11",
    "inception_v3",
    "xception41",
    "hrnet_w18_small",
)
"""The timm architectures of ``source="timm"`` (the module docstring groups them by family)."""

COLUMNS: tuple[str, ...] = (
    "model",
    "source",
    "family",
    "params",
    "macs",
    "macs_source",
    "runs",
    "feasible_min",
    "feasible_max",
    "fits",
    "spatial_unproductive",
    "spatial_layers",
    "unproductive_layers",
    "layers",
    "unproductive_params_share",
    "unproductive_macs_share",
    "border_layer",
    "status",
    "build",
    "note",
)
"""The columns of :func:`table`, in order."""

_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


# -- which models ----------------------------------------------------------------------------------------


def model_specs(source: str = "torchvision") -> list[str]:
    """The model spec strings (``"torchvision:resnet18"``, ``"timm:resnet50d"``) of a source."""
    if source not in SOURCES:
        raise RFError(f"source must be one of {', '.join(map(repr, SOURCES))}, got {source!r}")
    specs: list[str] = []
    if source in ("torchvision", "both"):
        try:
            import torchvision
        except ImportError:
            raise RFError("source='torchvision' needs torchvision: pip install 'rf-widgets[torch]'") from None
        specs += [f"torchvision:{n}" for n in torchvision.models.list_models(module=torchvision.models)]
    if source in ("timm", "both"):
        try:
            import timm  # noqa: F401
        except ImportError:
            raise RFError("source='timm' needs timm: pip install timm") from None
        specs += [f"timm:{n}" for n in TIMM_MODELS]
    return specs


def _resolve_models(models: Iterable[str] | None, source: str, known: list[str]) -> list[str]:
    if models is None:
        return known
    if isinstance(models, str):
        models = [models]
    by_name: dict[str, list[str]] = {}
    for spec in known:
        by_name.setdefault(spec.partition(":")[2], []).append(spec)
    chosen: list[str] = []
    for wanted in models:
        if wanted in known:
            chosen.append(wanted)
        elif wanted in by_name:
            chosen.extend(by_name[wanted])
        else:
            raise RFError(f"model {wanted!r} is not in the {source} zoo (see zoo.model_specs({source!r}))")
    return list(dict.fromkeys(chosen))


def _family(spec: str) -> str:
    """The module that defines the architecture (``torchvision.models.resnet`` -> ``resnet``)."""
    prefix, _, name = spec.partition(":")
    try:
        if prefix == "torchvision":
            import torchvision

            module = torchvision.models.get_model_builder(name).__module__
        else:
            import timm

            module = timm.models.model_entrypoint(name).__module__
    except Exception:  # an unknown name still gets a row, with the failure in its note
        return "?"
    return module.rsplit(".", 1)[-1].lstrip("_")


# -- one model --------------------------------------------------------------------------------------------


def _constructor(spec: str) -> Callable[[], Any]:
    prefix, _, name = spec.partition(":")
    if prefix == "torchvision":
        import torchvision

        return lambda: torchvision.models.get_model(name, weights=None)
    import timm

    return lambda: timm.create_model(name, pretrained=False)


@lru_cache(maxsize=1)
def _empty_on_meta() -> Any:
    """A torch function mode that sends ``torch.empty`` without a device to the meta device.

    Layers allocate their parameters with ``torch.empty``; constructors that compute with other tensor
    factories (``torch.arange(...).tolist()`` in torchvision's RegNets) keep working on the CPU.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    class EmptyOnMeta(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kwargs = dict(kwargs or {})
            if func is torch.empty and kwargs.get("device") is None:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)

    return EmptyOnMeta


def _build(spec: str, how: str) -> Any:
    import torch

    make = _constructor(spec)
    if how == "meta":
        with torch.device("meta"):
            model = make()
    elif how == "meta-parameters":
        with _empty_on_meta()():
            model = make()
        model = model.to("meta")  # the few CPU buffers too: the shape pass then runs on one device
    else:
        model = make()
    return model.eval()


def _analyse(model: Any, input_size: tuple[int, ...], on_meta: bool) -> tuple[Any, list[str]]:
    """``rfw.analyze(model, input_size)``, with the warnings it gave (as text)."""
    import torch

    from rf_widgets._api import analyze
    from rf_widgets.errors import UnknownOperationWarning

    # On the meta device the importer's shape pass must see a meta input too: the device context
    # makes its placeholder tensor a meta tensor.
    context = torch.device("meta") if on_meta else contextlib.nullcontext()
    with warnings.catch_warnings(record=True) as caught, context:
        warnings.simplefilter("always")
        result = analyze(model, input_size)
    found = [str(w.message) for w in caught if issubclass(w.category, UnknownOperationWarning)]
    return result, found


def _in_channels(model: Any) -> int:
    import torch.nn as nn

    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return int(m.in_channels)
    return 3


def count_macs(model: Any, input_size: tuple[int, ...], device: str = "meta") -> int:
    """Multiply-adds of one forward pass of ``model`` on a batch of one (FlopCounterMode / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.empty(1, _in_channels(model), *input_size, device=device)
    # tensors a forward pass makes for itself (masks, positions) must live on the same device
    with FlopCounterMode(display=False) as counter, torch.no_grad(), torch.device(device):
        model(x)
    return int(counter.get_total_flops()) // 2


def _row_from(spec: str, model: Any, result: Any, build: str) -> dict[str, Any]:
    size = result.input_size
    layers = result.stack.layers
    spatial = [i for i, is_spatial in enumerate(result.verdicts.spatial) if is_spatial]
    unproductive = set(result.verdicts.unproductive)
    share = result.unproductive_share()
    low, high = result.resolution_range
    notes: list[str] = []
    table_macs = sum(layer.macs for layer in result.layers)
    try:
        macs, macs_source = count_macs(model.to("meta"), size), "forward pass"
        if macs != table_macs:
            notes.append(f"the layer table counts {table_macs:,} multiply-adds")
    except Exception as err:  # the model cannot run at this size: keep the analysis' count
        macs, macs_source = table_macs, "layer table"
        notes.append(f"does not run at {'x'.join(map(str, size))}: {_one_line(err)}")
    params = sum(p.numel() for p in model.parameters())
    in_layers = sum(layer.params for layer in layers)
    if in_layers != params:
        notes.append(f"{params - in_layers:,} parameters outside the analysed layers")
    unknown = result.counts["unknown"]
    if unknown:
        names = [layers[i].name for i, s in enumerate(result.verdicts.status) if s == "unknown"]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        notes.insert(0, f"{unknown} unknown operations ({shown}): fields after them are lower bounds")
    fits = (
        low is not None and high is not None and all(low <= n for n in size) and all(n <= high for n in size)
    )
    return {
        "model": spec,
        "source": spec.partition(":")[0],
        "family": _family(spec),
        "params": int(params),
        "macs": int(macs),
        "macs_source": macs_source,
        "runs": macs_source == "forward pass",
        "feasible_min": low,
        "feasible_max": high,
        "fits": bool(fits),
        "spatial_unproductive": sum(1 for i in spatial if i in unproductive),
        "spatial_layers": len(spatial),
        "unproductive_layers": len(unproductive),
        "layers": len(layers),
        "unproductive_params_share": share["params"],
        "unproductive_macs_share": share["macs"],
        "border_layer": result.border_layer,
        "status": "unknown-ops" if unknown else "ok",
        "build": build,
        "note": "; ".join(notes),
    }


def _failed_row(spec: str, reason: str, build: str | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        model=spec,
        source=spec.partition(":")[0],
        family=_family(spec),
        fits=False,
        runs=False,
        status="failed",
        build=build,
        note=reason,
    )
    return row


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def analyse_model(spec: str, input_size: tuple[int, ...]) -> dict[str, Any]:
    """One row of :func:`table` for the model ``spec``, computed now (never raises for a bad model).

    The model is built on the meta device, else with only its parameters there, else on the CPU; the
    first build that can be analysed gives the row.
    """
    failures: list[str] = []
    for how in ("meta", "meta-parameters", "cpu"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constructors' deprecation notes are not ours to show
                model = _build(spec, how)
        except Exception as err:
            failures.append(f"building on {how}: {_one_line(err)}")
            continue
        try:
            result, _ = _analyse(model, input_size, on_meta=how != "cpu")
        except Exception as err:
            failures.append(f"analysing ({how} build): {_one_line(err)}")
            continue
        try:
            return _row_from(spec, model, result, how)
        except Exception as err:  # a bug in the summary must not end the whole table
            return _failed_row(spec, f"summarising: {_one_line(err)}", how)
    return _failed_row(spec, "; ".join(failures), None)


# -- the cache -------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where the zoo tables are cached: ``$RF_WIDGETS_CACHE_DIR``, else the user's cache folder."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rf_widgets"


@lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    """The library versions and a digest of rf_widgets' sources: what the cached rows depend on."""
    from importlib import metadata

    found = {"schema": str(CACHE_SCHEMA)}
    for name in ("torch", "torchvision", "timm", "rf-widgets"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    found["rf_widgets_sources"] = digest.hexdigest()[:16]
    return found


def _cache_file(directory: Path, source: str, size: tuple[int, ...]) -> Path:
    key = hashlib.sha256(json.dumps(_versions(), sort_keys=True).encode()).hexdigest()[:12]
    return directory / f"zoo-{key}" / f"{source}-{'x'.join(map(str, size))}.json"


def _load(path: Path, prefix: str | None = None) -> dict[str, Any]:
    """The cached document (``specs``: the source's model list, ``rows``), or an empty one.

    A document that is not what :func:`_save` writes (a JSON list, a malformed row, a spec of another
    source) is set aside with a warning and its rows are computed again.
    """
    empty: dict[str, Any] = {"specs": None, "rows": {}}
    try:
        if not path.is_file():
            return empty
        from rf_widgets.stackfile import read_regular

        document = json.loads(read_regular(path, MAX_CACHE_BYTES, "zoo cache", RFError))
    except (OSError, ValueError, RecursionError):  # RFError is a ValueError: unreadable, too large
        return _corrupt(path, "it is not readable JSON")
    if not isinstance(document, dict):
        return _corrupt(path, f"it holds a JSON {type(document).__name__}, not the zoo's table")
    if document.get("versions") != _versions():
        return empty  # written by other library versions: a new cache, not a corrupt one
    specs, rows = document.get("specs"), document.get("rows")
    own = (prefix or "") + ":"
    if not isinstance(specs, list) or not all(isinstance(n, str) and n.startswith(own) for n in specs):
        return _corrupt(path, "its model list is not a list of this source's specs")
    if not isinstance(rows, dict):
        return _corrupt(path, "its rows are not a table")
    bad = [k for k, row in rows.items() if k not in specs or not _well_formed(row)]
    if bad:
        _corrupt(path, f"{len(bad)} row(s) are malformed or name models outside its list ({shown(bad[0])})")
        rows = {k: row for k, row in rows.items() if k not in bad}
    return {"specs": specs, "rows": rows}


MAX_CACHE_BYTES = 32 * 2**20
"""The largest zoo cache file read."""


def _well_formed(row: Any) -> bool:
    return isinstance(row, dict) and set(row) == set(COLUMNS)


def _corrupt(path: Path, why: str) -> dict[str, Any]:
    warnings.warn(f"zoo cache '{path}' is set aside ({why}); its rows are computed again", stacklevel=3)
    return {"specs": None, "rows": {}}


def _save(path: Path, specs: list[str], rows: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    document = {"versions": _versions(), "specs": specs, "rows": rows}
    temporary.write_text(json.dumps(document, indent=0))
    temporary.replace(path)  # atomic: a reader never sees half a file


# -- progress --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A progress bar (tqdm when installed, a plain line on stderr otherwise); yields ``step(label)``."""
    if not enabled or total == 0:
        yield lambda label: None
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total, desc="rf_widgets zoo", unit="model", file=sys.stderr)

        def step(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

        try:
            yield step
        finally:
            bar.close()
        return
    done = [0]

    def line(label: str) -> None:
        done[0] += 1
        end = "\n" if done[0] == total or not sys.stderr.isatty() else "\r"
        print(f"rf_widgets zoo: {done[0]}/{total} {label}".ljust(60), end=end, file=sys.stderr, flush=True)

    yield line


# -- the table -------------------------------------------------------------------------------------------


def parse_count(value: int | float | str) -> int:
    """``30M`` -> 30000000; also ``1.5G``, ``500k``, plain numbers."""
    if isinstance(value, bool):
        raise RFError(f"a count must be a number such as 30M, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise RFError(f"a count must be a positive number such as 30M, got {value!r}")
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGbB]?)\s*", str(value))
    if not match:
        raise RFError(f"a count must be a number with an optional k, M or G suffix (30M), got {value!r}")
    number, suffix = match.groups()
    return int(float(number) * _SUFFIXES.get(suffix.lower(), 1))


def _normalise_size(input_size: int | Sequence[int]) -> tuple[int, ...]:
    from rf_widgets.core.analysis import normalize_resolution

    ndim = 2 if isinstance(input_size, int) else len(input_size)
    return normalize_resolution(input_size, ndim)


def table(
    input_size: int | Sequence[int] = 224,
    source: str = "torchvision",
    *,
    models: Iterable[str] | None = None,
    max_params: int | str | None = None,
    cache: bool = True,
    progress: bool = True,
) -> Any:
    """The model zoo analysed at ``input_size``: one row per model, as a pandas DataFrame.

    Parameters
    ----------
    input_size
        The image size: one int (square) or ``(height, width)``.
    source
        ``"torchvision"`` (every classifier of ``torchvision.models``), ``"timm"`` (:data:`TIMM_MODELS`)
        or ``"both"``.
    models
        Only these models: spec strings (``"timm:resnet50d"``) or bare names (``"resnet18"``, every
        source that has it).
    max_params
        Keep the models with at most this many parameters (an int or ``"30M"``).
    cache
        Read and write the on-disk cache (:func:`cache_dir`); ``False`` computes every row now.
    progress
        Show a progress bar (or line) while rows are computed.

    Returns
    -------
    pandas.DataFrame
        The :data:`COLUMNS`, one row per model in the order of the source, index 0..n-1.

    Examples
    --------
    >>> from rf_widgets import zoo
    >>> df = zoo.table(96, models=["resnet18", "vgg11"], progress=False)  # doctest: +SKIP
    >>> df.sort_values("macs")[["model", "fits", "border_layer"]]  # doctest: +SKIP
    """
    try:
        import pandas as pd
    except ImportError:
        raise RFError("zoo.table() needs pandas: pip install 'rf-widgets[zoo]'") from None
    size = _normalise_size(input_size)
    limit = None if max_params is None else parse_count(max_params)
    if source not in SOURCES:
        raise RFError(f"source must be one of {', '.join(map(repr, SOURCES))}, got {source!r}")
    prefixes = ["torchvision", "timm"] if source == "both" else [source]
    documents = {
        prefix: _load(_cache_file(cache_dir(), prefix, size), prefix)
        if cache
        else {"specs": None, "rows": {}}
        for prefix in prefixes
    }
    known: list[str] = []
    for prefix, document in documents.items():
        # the cached model list spares importing torchvision or timm when every row is cached
        known += document["specs"] if document["specs"] is not None else model_specs(prefix)
    specs = _resolve_models(models, source, known)
    rows: dict[str, dict[str, Any]] = {}
    for document in documents.values():
        rows.update(document["rows"])
    missing = [spec for spec in specs if spec not in rows]
    if missing and any(d["specs"] is not None for d in documents.values()):
        # a model is built only when the library lists it, never because a cache file names it
        listed = [spec for prefix in prefixes for spec in model_specs(prefix)]
        strays = [spec for spec in known if spec not in listed]
        if strays:
            warnings.warn(
                f"the zoo cache names {len(strays)} model(s) the libraries do not list ({shown(strays[0])}); "
                "the model list is read from the libraries again",
                stacklevel=2,
            )
            known = listed
            specs = _resolve_models(models, source, known)
            rows = {k: v for k, v in rows.items() if k in listed}
            missing = [spec for spec in specs if spec not in rows]
    try:
        with _progress(len(missing), progress) as step:
            for spec in missing:
                rows[spec] = analyse_model(spec, size)
                step(spec)
    finally:  # rows computed before an interruption are kept
        if cache and missing:
            for prefix in prefixes:
                path = _cache_file(cache_dir(), prefix, size)
                mine = {k: v for k, v in rows.items() if k.partition(":")[0] == prefix}
                with contextlib.suppress(OSError), warnings.catch_warnings():
                    # a read-only cache folder costs speed only; a corrupt file was reported on reading
                    warnings.simplefilter("ignore")
                    _save(
                        path,
                        [k for k in known if k.startswith(prefix + ":")],
                        {**_load(path, prefix)["rows"], **mine},
                    )
    frame = pd.DataFrame([rows[spec] for spec in specs], columns=list(COLUMNS))
    for column in ("params", "macs", "feasible_min", "feasible_max"):
        frame[column] = frame[column].astype("Int64")
    for column in ("border_layer", "macs_source", "build", "note"):
        # missing text stays None (pandas would make it NaN, which reads as a number)
        frame[column] = pd.Series([rows[spec][column] for spec in specs], dtype=object)
    if limit is not None:
        frame = frame[frame["params"].fillna(0) <= limit].reset_index(drop=True)
    return frame


# -- the plot --------------------------------------------------------------------------------------------


@dataclass
class FeasiblePlot:
    """What :func:`plot_feasible` drew: ``ax`` and the named ``artists``."""

    ax: Any
    artists: dict[str, Any] = field(default_factory=dict)


def plot_feasible(
    frame: Any,
    input_size: int | None = None,
    *,
    models: Sequence[str] | None = None,
    ax: Any = None,
    label: str = "model",
) -> FeasiblePlot:
    """Horizontal bars from ``feasible_min`` to ``feasible_max`` per model, the input size as a line.

    Parameters
    ----------
    frame
        A :func:`table` (or any DataFrame with ``model``, ``feasible_min``, ``feasible_max``).
    input_size
        The size to mark with a vertical line (square side); None draws no line.
    models
        The rows to draw (values of the ``model`` column or bare names), in this order; default: all.
    ax
        A matplotlib Axes; None makes a new Figure with an Agg canvas (no pyplot).
    label
        The column used for the bar labels.

    Returns
    -------
    FeasiblePlot
        ``artists["bars"]`` (feasible ranges), ``artists["empty"]`` (models whose minimum exceeds their
        maximum: no size makes every layer useful, drawn hatched between the two), ``artists["line"]``.
        Models with a missing end (failed analyses) get no bar; ``artists["missing"]`` names them.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = frame
    if models is not None:
        names = [str(n) for n in models]
        bare = frame["model"].str.partition(":")[2]
        picks = []
        for name in names:
            hit = frame.index[(frame["model"] == name) | (bare == name)]
            if len(hit) == 0:
                raise RFError(f"no model {name!r} in the table")
            picks.append(hit[0])
        rows = frame.loc[picks]
    if ax is None:
        figure = Figure(figsize=(7, 0.3 * len(rows) + 1.2), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
    ypos, good, empty, missing = [], [], [], []
    for y, (_, row) in enumerate(rows.iterrows()):
        ypos.append(y)
        low, high = row["feasible_min"], row["feasible_max"]
        if _missing(low) or _missing(high):
            missing.append(row[label])
        elif low <= high:
            good.append((y, int(low), int(high)))
        else:
            empty.append((y, int(high), int(low)))
    artists: dict[str, Any] = {"missing": missing}
    artists["bars"] = ax.barh(
        [y for y, _, _ in good],
        [b - a for _, a, b in good],
        left=[a for _, a, _ in good],
        height=0.6,
        color="#6aa84f",
        label="feasible input sizes",
    )
    artists["empty"] = ax.barh(
        [y for y, _, _ in empty],
        [b - a for _, a, b in empty],
        left=[a for _, a, _ in empty],
        height=0.6,
        color="none",
        edgecolor="#b00000",
        hatch="///",
        label="minimum above maximum",
    )
    if input_size is not None:
        artists["line"] = ax.axvline(input_size, color="#1f4e9c", lw=2, label=f"your images: {input_size}")
    ax.set_yticks(ypos, [str(v) for v in rows[label]])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("square input size (pixels, log scale)")
    artists["legend"] = ax.legend(loc="lower right", fontsize=8)
    return FeasiblePlot(ax, artists)


def _missing(value: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except ImportError:  # pragma: no cover - pandas comes with every table
        return value is None


# -- the command line ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rf-widgets zoo",
        description="Every torchvision classifier (and a set of timm models) analysed at one input size.",
    )
    parser.add_argument("--resolution", "-r", type=int, default=224, help="square input size (default 224)")
    parser.add_argument("--source", choices=SOURCES, default="torchvision", help="which model zoo")
    parser.add_argument("--max-params", help="only models with at most this many parameters, e.g. 30M")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="only these models")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--no-cache", action="store_true", help="compute every row, read no cache")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return parser


def _human(value: Any) -> str:
    if _missing(value):
        return "-"
    value = float(value)
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix}"
    return f"{value:.0f}"


def format_table(frame: Any) -> str:
    """The table as aligned text, sorted by multiply-adds (what the command line prints)."""
    head = ("model", "params", "MACs", "feasible", "fits", "unprod. spatial", "unprod. MACs", "border layer")
    lines = [head]
    for _, row in frame.sort_values("macs", na_position="last").iterrows():
        if row["status"] == "failed":
            lines.append((row["model"], "-", "-", "failed", "-", "-", "-", str(row["note"])[:60]))
            continue
        low, high = row["feasible_min"], row["feasible_max"]
        share = row["unproductive_macs_share"]
        lines.append(
            (
                row["model"] + ("*" if row["status"] == "unknown-ops" else ""),
                _human(row["params"]),
                _human(row["macs"]),
                f"{'?' if _missing(low) else low}-{'inf' if _missing(high) else high}",
                "yes" if row["fits"] else "no",
                f"{row['spatial_unproductive']}/{row['spatial_layers']}",
                "-" if _missing(share) else f"{share:.0%}",
                "none" if _missing(row["border_layer"]) else row["border_layer"],
            )
        )
    widths = [max(len(str(line[c])) for line in lines) for c in range(len(head))]
    text = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    if (frame["status"] == "unknown-ops").any():
        text.append("* some operations have no rule: fields after them are lower bounds")
    return "\n".join(text)


def main(argv: Sequence[str] | None = None) -> int:
    """``rf-widgets zoo --resolution 64 [--source timm] [--max-params 30M] [--json]``."""
    args = _parser().parse_args(argv)
    try:
        frame = table(
            args.resolution,
            args.source,
            models=args.models,
            max_params=args.max_params,
            cache=not args.no_cache,
            progress=not args.quiet,
        )
    except RFError as err:
        print(f"rf_widgets: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(frame.to_json(orient="records", indent=1))
    else:
        print(format_table(frame))
        failed = int((frame["status"] == "failed").sum())
        fits = int(frame["fits"].sum())
        print(f"\n{len(frame)} models at {args.resolution}x{args.resolution}: {fits} fit, {failed} failed")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
