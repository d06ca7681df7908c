"""Toolchain facts that enter task keys, read without importing the tools.

Versions come from installed distribution metadata: importing torch to ask `torch.__version__` costs
two seconds and would break the promise that a fully cached run imports neither torch, onnx nor
TensorRT. They are read the way `importlib.metadata.version` finds them (the first `<name>-*.dist-info`
or `.egg-info` along sys.path, its `Version:` header) but without importing `importlib.metadata`
(36 ms with the email parser it loads, a tenth of a no-op run): one listing per sys.path folder, kept
while the folder's mtime and inode are unchanged, and one `METADATA` header read per state of that
file (inode, size, mtime). An upgrade or reinstall renames or rewrites the `*.dist-info` folder, so
the next call sees it. Anything this does not handle (a zip or another metadata finder on the path)
goes to `importlib.metadata` itself.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
import sys
from importlib.machinery import PathFinder

# Distributions that provide `import tensorrt_rtx`, newest CUDA first.
TENSORRT_RTX_DISTRIBUTIONS = ("tensorrt-rtx-cu13", "tensorrt-rtx-cu12", "tensorrt-rtx")
TENSORRT_DISTRIBUTIONS = ("tensorrt-cu13", "tensorrt-cu12", "tensorrt")


def version_of(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    name = _normalized(distribution)
    for entry in sys.path:
        listing = _metadata_folders(entry or ".")
        if listing is None:
            return _version_from_importlib(distribution)
        if name in listing:
            return metadata_version(listing[name])
    if _other_metadata_finders():
        return _version_from_importlib(distribution)
    return None


def metadata_version(metadata: str | os.PathLike[str]) -> str | None:
    """The `Version:` header of a `*.dist-info` (METADATA) or `*.egg-info` (PKG-INFO, or the file),
    read once per state of that file (path, inode, size, mtime): an upgrade or reinstall writes a
    new one."""
    path = os.fspath(metadata)
    candidates = [path] if os.path.isfile(path) else [os.path.join(path, n) for n in ("METADATA", "PKG-INFO")]
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        return _read_version(candidate, st.st_ino, st.st_size, st.st_mtime_ns)
    return None


@functools.lru_cache(maxsize=256)
def _read_version(path: str, inode: int, size: int, mtime_ns: int) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if not line.strip():
                    break  # the headers end at the first blank line
                if line.startswith("Version:"):
                    return line.removeprefix("Version:").strip()
    except OSError:
        pass
    return None


def _metadata_folders(entry: str) -> dict[str, str] | None:
    """Normalized distribution name -> its metadata in one sys.path folder; {} when there is no such
    folder, None when the entry is something else (a zip): importlib.metadata must read that."""
    try:
        st = os.stat(entry)
    except OSError:
        return {}
    if not os.path.isdir(entry):
        return None
    return _listing(entry, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=64)
def _listing(entry: str, mtime_ns: int, inode: int) -> dict[str, str]:
    """Keyed by the folder's mtime and inode: installing or removing a distribution changes them."""
    try:
        names = sorted(os.listdir(entry))
    except OSError:
        return {}
    found: dict[str, str] = {}
    for name in names:
        stem, _, suffix = name.rpartition(".")
        if suffix in ("dist-info", "egg-info"):
            found.setdefault(_normalized(stem.partition("-")[0]), os.path.join(entry, name))
    return found


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _other_metadata_finders() -> bool:
    """A meta path finder other than the path finder that can also find distributions."""
    return any(finder is not PathFinder and hasattr(finder, "find_distributions") for finder in sys.meta_path)


def _version_from_importlib(distribution: str) -> str | None:
    import importlib.metadata  # only for what the listing above cannot read

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def first_installed(distributions: tuple[str, ...]) -> tuple[str, str] | None:
    """(distribution, version) of the first installed one of several alternative distributions."""
    for name in distributions:
        version = version_of(name)
        if version is not None:
            return name, version
    return None


def versions(distributions: tuple[str, ...]) -> dict[str, str | None]:
    return {name: version_of(name) for name in distributions}


def module_available(module: str) -> bool:
    """True when a top-level module can be imported, found without importing it."""
    return importlib.util.find_spec(module) is not None


def _on_path(program: str) -> bool:
    folders = os.environ.get("PATH", os.defpath).split(os.pathsep)
    paths = (os.path.join(folder or ".", program) for folder in folders)
    return any(os.path.isfile(path) and os.access(path, os.X_OK) for path in paths)


@functools.cache
def nvidia_gpus() -> tuple[dict[str, str], ...]:
    """The machine's NVIDIA GPUs as nvidia-smi reports them (name, compute capability, driver).

    Empty on a machine without a GPU or driver. Asked of nvidia-smi rather than CUDA so that
    planning stays free of heavy imports.
    """
    # Validation's key asks on every run, a no-op's too: a machine without the driver's device node
    # or nvidia-smi answers from two stats, without importing shutil (bz2, lzma) or subprocess.
    if not (os.path.exists("/dev/nvidiactl") or _on_path("nvidia-smi")):
        return ()
    import subprocess

    try:
        completed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in completed.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 3:
            gpus.append({"name": fields[0], "compute_capability": fields[1], "driver": fields[2]})
    return tuple(gpus)


def interpreter_version() -> str:
    """This interpreter as key material, e.g. `cpython-3.11.7`: the TensorRT-RTX build worker runs
    its base interpreter, whose version shapes the engine's bytes (backends/trt/recipe.py)."""
    return f"{sys.implementation.name}-{platform.python_version()}"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: `taskset`, a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
