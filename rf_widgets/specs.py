"""Model specs as strings: ``torchvision:NAME``, ``timm:NAME``, ``package.module:factory``, a file.

Trust model. ``torchvision:NAME`` and ``timm:NAME`` only build a model the library lists, and a stack
file is data (JSON, or YAML read with ``safe_load``): these are always allowed. ``package.module:factory``
imports a module and calls a function, which runs arbitrary code: it is allowed from the Python API and
the command line (as other import-string tools do), but refused, before anything is imported, where
the text may come from someone else (``%rfa`` lines, widget fields) unless the caller passes
``allow_code=True``. Even then the factory must be a class deriving from ``nn.Module`` or a Python
function callable without arguments, outside the standard library; anything else is refused before it
is called, and a factory that returns something other than a model is reported.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from rf_widgets.errors import ModelImportError, shown

__all__ = ["load_model_spec"]

STACK_SUFFIXES = (".json", ".yaml", ".yml")
MAX_SPEC = 4096
"""The longest spec string read (a path longer than this is no file name on any common system)."""
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def load_model_spec(spec: str, *, allow_code: bool = True) -> Any:
    """The model (an ``nn.Module``) or :class:`~rf_widgets.core.graph.Stack` a spec string names.

    Models are built without pretrained weights (nothing is downloaded).

    Parameters
    ----------
    spec
        ``torchvision:NAME``, ``timm:NAME``, ``package.module:factory`` or the path of a stack file.
    allow_code
        Whether ``package.module:factory`` may import and run code. Widgets and ``%rfa`` pass False
        unless the user opted in; see the module docstring for the whole trust model.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelImportError(f"a model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec.lower().endswith(".onnx"):
        from rf_widgets.onnx_import import import_onnx

        return import_onnx(spec)
    if len(spec) > MAX_SPEC:
        raise ModelImportError(
            f"a model spec of {len(spec):,} characters ({shown(spec, 40)}) is longer than any model name or "
            f"path; at most {MAX_SPEC} (MAX_SPEC)"
        )
    if spec.lower().endswith(STACK_SUFFIXES) or _is_file(spec):
        from rf_widgets.stackfile import read_stack

        return read_stack(spec)
    prefix, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelImportError(
            f"cannot understand the model spec '{spec}': use torchvision:NAME, timm:NAME, "
            "package.module:factory or the path of a .json/.yaml stack file"
        )
    if prefix == "torchvision":
        return _torchvision(rest)
    if prefix == "timm":
        return _timm(rest)
    if not _DOTTED.fullmatch(prefix) or not _DOTTED.fullmatch(rest):
        raise ModelImportError(
            f"cannot understand the model spec '{spec}': package.module:factory takes dotted Python names"
        )
    if not allow_code:
        raise ModelImportError(
            f"'{spec}' would import and run Python code from '{prefix}'; here only torchvision:NAME, "
            "timm:NAME and stack files are accepted (opt in with allow_code=True, or %rfa --allow-code, "
            "if you trust it)"
        )
    return _factory(prefix, rest)


def _is_file(spec: str) -> bool:
    try:
        return Path(spec).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _in_standard_library(target: Any) -> str | None:
    """The standard-library (or builtin) module ``target`` lives in, whatever path reached it."""
    import sysconfig

    inner = getattr(target, "__func__", target)
    names = [getattr(inner, "__module__", None)]
    if inspect.isfunction(inner) or inspect.ismethod(inner) or inspect.isclass(inner):
        module = inspect.getmodule(inner)
        names.append(getattr(module, "__name__", None))
    for name in names:
        top = str(name or "").split(".")[0]
        if (
            top in ("builtins", "__builtin__")
            or top in sys.stdlib_module_names
            or top in sys.builtin_module_names
        ):
            return str(name)
    code = getattr(inner, "__code__", None)
    filename = str(getattr(code, "co_filename", "") or "")
    stdlib = sysconfig.get_paths().get("stdlib", "")
    if stdlib and filename.startswith(stdlib) and "-packages" not in filename:
        return filename
    return None


def _torchvision(name: str) -> Any:
    try:
        import torchvision
    except ImportError:
        raise ModelImportError(
            "torchvision:… specs need torchvision: pip install 'rf-widgets[torch]'"
        ) from None
    known = torchvision.models.list_models()
    if name not in known:
        raise ModelImportError(f"torchvision has no model '{name}'{_suggest(name, known)}")
    import inspect

    builder = torchvision.models.get_model_builder(name)
    options: dict[str, Any] = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        options["weights_backbone"] = None  # segmentation and detection models: no backbone download
    return builder(**options)


def _timm(name: str) -> Any:
    try:
        import timm
    except ImportError:
        raise ModelImportError("timm:… specs need timm: pip install timm") from None
    known = timm.list_models()
    if name not in known:
        raise ModelImportError(f"timm has no model '{name}'{_suggest(name, known)}")
    return timm.create_model(name, pretrained=False)


def _factory(module_name: str, attribute: str) -> Any:
    spec = f"{module_name}:{attribute}"
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ModelImportError(
            f"'{spec}' names the Python standard library, which has no model factories; refused"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelImportError(f"cannot import '{module_name}' for the spec '{spec}': {err}") from None
    except Exception as err:  # importing runs the module's code: report, do not crash
        raise ModelImportError(
            f"importing '{module_name}' for the spec '{spec}' failed: {type(err).__name__}: {err}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ModelImportError(f"'{module_name}' has no attribute '{attribute}'")
        target = getattr(target, part)
    if _is_model(target):
        return target
    home = _in_standard_library(target)
    if home is not None:
        raise ModelImportError(
            f"'{spec}' is {getattr(target, '__qualname__', type(target).__name__)} from the standard library "
            f"('{home}'), which has no model factories; refused"
        )
    _check_factory(target, spec)
    try:
        made = target()
    except Exception as err:
        raise ModelImportError(f"calling '{spec}()' failed: {type(err).__name__}: {err}") from None
    if not _is_model(made):
        raise ModelImportError(f"'{spec}()' returned {type(made).__name__}, not a torch.nn.Module or a Stack")
    return made


def _check_factory(target: Any, spec: str) -> None:
    """Refuse, before calling it, anything that cannot be a model factory."""
    torch = sys.modules.get("torch")
    if inspect.isclass(target):
        if torch is None or not issubclass(target, torch.nn.Module):
            raise ModelImportError(f"'{spec}' is the class {target.__name__}, not a torch.nn.Module subclass")
    elif not (inspect.isfunction(target) or inspect.ismethod(target)):
        raise ModelImportError(
            f"'{spec}' is {type(target).__name__}, not a class or a Python function that builds a model"
        )
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        raise ModelImportError(
            f"'{spec}' needs the arguments {', '.join(required)}; "
            "a spec can only call a factory without arguments"
        )


def _is_model(obj: Any) -> bool:
    from rf_widgets.core.graph import Stack

    if isinstance(obj, Stack):
        return True
    try:
        import torch
    except ImportError:
        return False
    return isinstance(obj, torch.nn.Module)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
