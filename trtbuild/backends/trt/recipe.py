"""The conditions under which TensorRT-RTX's engine bytes are a function of the build's inputs.

TensorRT-RTX numbers the internal tensors of its Myelin graphs in an order that follows heap
addresses and, for Q/DQ (int8) graphs, how its two builder threads interleave; so the engine's
bytes depend on everything the build process allocated and on scheduling. Measured on ResNet-50
(fp32, fp16, int8; 3 targets), with address-space randomisation off, the bytes changed with
- the length in bytes of the real path of the `tensorrt_rtx*` packages (one more changed them; a
  symlink does not help, the real path counts; the same length at another place or depth did not),
  and a non-ASCII character in it (Python holds such a string in a larger object),
- the interpreter (its build and install path) and whether it compiled or read .pyc files,
- the environment variables (one extra variable changed them), and anything else imported first,
- the order the filesystem lists the libraries' folder in (the package loads them in that order),
  and the filesystem itself (tmpfs maps them at other addresses),
- the builder's log: keeping its info and verbose messages (which carry timings),
- for int8, CPU load: 6 of 6 builds under load gave 6 different engines (fp32 and fp16 did not
  change), also with one malloc arena, a fixed mmap threshold or pinned to one CPU;
and did not change with the working folder, the temp folder or which ASCII characters the path has.

So the worker runs as: the flavour's packages hard-linked (or copied) into a folder under the cache
whose real path is padded to a fixed length in bytes (a non-ASCII one is refused); the base
interpreter (never a virtualenv's, whose prefix is another path) with `-E -s -S -B` and a pycache
prefix that holds nothing, so every module is compiled from source every time; an empty
environment; a script (loader.py) that imports only the standard library and the packages, loads
the libraries in sorted order and keeps only the builder's warnings and errors; `setarch -R` (no
address randomisation); and on a CPU no other trtbuild builder holds, at real-time FIFO priority
(`taskset`, `chrt -f 1`), where a thread runs until it blocks, so the two builder threads
interleave the same way whatever else the machine does (int8 under load: 5 of 5 and 8 of 8
identical). Even so, int8 builds still differed now and then when the kernel made a thread wait
(memory pressure; right after a large install), so the worker marks Q/DQ engines as not
guaranteed to repeat. What remains is the build environment: the interpreter's version enters the
key, and a fingerprint of the interpreter installation and the copy's filesystem is recorded with
each engine so `verify` can say "built in another environment" rather than "different". Anything
that stops the recipe is said in the run, in engine.json and in the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import logging
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from trtbuild.backends.trt import loader
from trtbuild.store.toolchains import copy_damage, manifest_path, write_manifest
from trtbuild.toolchain import interpreter_version

_log = logging.getLogger(__name__)

# The real path of the folder holding the packages is padded to exactly this many characters.
FIXED_PATH_LENGTH = 200
SCRIPT = "trtbuild_engine_builder.py"  # loader.py's copy, run as the worker
STAGING_PREFIX = ".staging-"  # a copy being made; one a killed process left goes with `trtbuild gc`
NO_PYCACHE = "no-pycache"  # a pycache prefix that never holds anything: compile everything


def base_interpreter() -> Path:
    """The interpreter a virtualenv was made from (the same program, with a prefix that does not
    depend on where the virtualenv is), by its real path."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))


def environment_fingerprint(toolchains: Path) -> str:
    """`cpython-3.11.7/ext4/1a2b3c4d`: two machines with the same fingerprint run the same
    interpreter installation (same build at the same path) on as many CPUs, with the packages' copy
    on the same kind of filesystem. Opaque but for those two names: no path is recorded. The
    filesystem is in because it changes where the libraries are mapped (tmpfs aligns them for huge
    pages): fp32 ResNet-50 gave other bytes from tmpfs, every time. The CPU count is in because
    TensorRT may size its thread pools by it (not measured: one machine)."""
    material = f"{base_interpreter()}\0{sys.version}\0{platform.machine()}\0{os.cpu_count()}".encode()
    return f"{interpreter_version()}/{filesystem_type(toolchains)}/{hashlib.sha256(material).hexdigest()[:8]}"


def filesystem_type(path: Path) -> str:
    """The type of the filesystem `path` (or its nearest existing parent) is on, from the kernel's
    mount table: `ext4`, `tmpfs`, `overlay`...; `unknown` where there is no such table."""
    target = Path(os.path.realpath(path))
    while not target.exists() and target != target.parent:
        target = target.parent
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            separator = fields.index("-")
            mount_point = fields[4].encode().decode("unicode_escape")  # spaces are escaped as \040
            inside = str(target) == mount_point or str(target).startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, fields[separator + 1]
    return kind


def package_dirs(module: str) -> list[Path]:
    """The flavour's package folders: `tensorrt_rtx` and, where installed, the `_bindings` and
    `_libs` packages it loads (the wheel layout of both TensorRT flavours)."""
    found = []
    for name in (module, f"{module}_bindings", f"{module}_libs"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            found.append(Path(next(iter(spec.submodule_search_locations))))
    return found


def _identity(dirs: list[Path]) -> str:
    """Which copy of the packages and of the worker script: sizes and modification times."""
    digest = hashlib.sha256(Path(loader.__file__).read_bytes())
    for folder in dirs:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                stat = path.stat()
                digest.update(
                    f"{path.relative_to(folder.parent)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode()
                )
    return digest.hexdigest()[:16]


class RecipeUnavailable(Exception):
    """The packages cannot be placed at a fixed-length path here; the message says why."""


def packages_at_fixed_path(module: str, version: str, toolchains: Path) -> Path:
    """A folder, at a real path of FIXED_PATH_LENGTH characters, holding the worker script and the
    flavour's packages (hard links where the filesystem allows, else copies), made once per version
    and copy of the packages; safe when several builds make it at once."""
    dirs = package_dirs(module)
    if not dirs:
        raise RecipeUnavailable(f"{module} is not installed")
    toolchains.mkdir(parents=True, exist_ok=True)
    parent = Path(os.path.realpath(toolchains)) / f"{module}-{version}-{_identity(dirs)}"
    # Bytes, not characters: the interpreter and the loader hold the path encoded (é is two bytes).
    if not str(parent).isascii():
        # Python holds a non-ASCII string in a larger object than an ASCII one of as many bytes:
        # no padding makes the allocations the same (measured: `é` in the path changed fp32 bytes).
        raise RecipeUnavailable(
            f"the cache folder's real path has non-ASCII characters ({parent.parent}): use an ASCII "
            "--cache-dir (for `trtbuild verify`, which builds in a temporary folder: an ASCII TMPDIR)"
        )
    padding = FIXED_PATH_LENGTH - len(os.fsencode(parent)) - 1
    if padding < 1:
        raise RecipeUnavailable(
            f"the cache folder's real path is too long: with the packages' folder it takes "
            f"{len(os.fsencode(parent)) + 2} bytes, and the build recipe pads to {FIXED_PATH_LENGTH}; use a "
            "shorter --cache-dir (for `trtbuild verify`, which builds in a temporary folder: shorter TMPDIR)"
        )
    final = parent / ("p" * padding)
    if (final / SCRIPT).is_file():
        damage = copy_damage(final)
        if damage is None:
            with contextlib.suppress(OSError):  # in use: `trtbuild gc` spares it (store/gc.py)
                os.utime(parent)
            return final
        # The copy is run by every build and its engines are cached: one that changed is never used.
        # One an older trtbuild made has no manifest: it is made again too, and that is no news.
        upgraded = not manifest_path(final).exists()
        _log.log(
            logging.DEBUG if upgraded else logging.WARNING,
            "the build's copy of %s in %s is damaged (%s): made again",
            *(module, final, "made before copies had manifests" if upgraded else damage),
        )
        _set_aside(final)
    _make_copy(dirs, parent, final)
    return final


def _make_copy(dirs: list[Path], parent: Path, final: Path) -> None:
    """Stage the packages and the worker script, their manifest, then rename into place."""
    parent.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would keep the other users of a shared cache out
        for folder in dirs:
            shutil.copytree(
                folder,
                staging / folder.name,
                copy_function=_link_or_copy,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        shutil.copyfile(loader.__file__, staging / SCRIPT)
        write_manifest(staging, manifest_path(final))
        try:
            staging.rename(final)  # atomic: a reader sees no folder or a complete one
        except OSError:
            if not (final / SCRIPT).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _set_aside(copy: Path) -> None:
    """Move a damaged copy out of the way at once (a build running from it keeps its open files);
    `trtbuild gc` removes staging folders a day old, and this one is removed here when it can be."""
    aside = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=copy.parent))
    with contextlib.suppress(OSError):
        copy.rename(aside / copy.name)
    shutil.rmtree(aside, ignore_errors=True)


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link keeps the copy cheap; across filesystems (or where links are refused), a copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


@contextmanager
def one_builder_per_cpu() -> Iterator[tuple[int, tuple[int, ...]]]:
    """A CPU of this process's affinity that no other trtbuild builder on the machine holds, and the
    descriptor of its lock (for the worker to inherit), held until the block ends; when every one is
    held, waits for the first. Two real-time builders on one CPU interleave their threads with each
    other's, which changed int8 engines' bytes. A lock file that cannot be opened (another user's
    that does not let others in, say) is not waited on."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    for blocking in (False, True):
        for cpu in cpus:
            handle = _cpu_lock(cpu)
            if handle is None:
                yield cpu, ()
                return
            with handle:  # closing it releases the lock (once the worker's copy is closed too)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    continue
                yield cpu, (handle.fileno(),)
                return


# One folder for every trtbuild on the machine, whatever its TMPDIR: the CPUs are the machine's.
CPU_LOCKS = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())


def _cpu_lock(cpu: int) -> IO[bytes] | None:
    path = CPU_LOCKS / f"trtbuild-builder-cpu{cpu}.lock"
    try:
        # Never through a symlink: in a shared /tmp, another user could point one at a file of ours.
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError:
        return None
    with contextlib.suppress(OSError):
        status = os.fstat(descriptor)
        if stat.S_ISREG(status.st_mode) and status.st_uid == os.geteuid():
            os.fchmod(descriptor, 0o666)  # so that other users' builders can take it too
    return os.fdopen(descriptor, "r+b")


def isolation_prefix(cpu: int) -> tuple[list[str], str | None]:
    """The command prefix that runs the worker without address randomisation (`setarch -R`), on
    `cpu` (`taskset`) at the lowest real-time priority (`chrt -f 1`), and None — or the part of
    it this machine refuses (a container's seccomp profile may forbid personality(2); real-time
    priority needs root or CAP_SYS_NICE), with the prefix that remains."""
    tools = {name: shutil.which(name) for name in ("setarch", "taskset", "chrt")}
    if not sys.platform.startswith("linux") or not all(tools.values()):
        missing = sorted(name for name, path in tools.items() if not path)
        return [], f"{', '.join(missing) or 'setarch'} not available (Linux's util-linux provides them)"
    parts = {
        "setarch -R": [str(tools["setarch"]), platform.machine(), "-R"],
        "taskset": [str(tools["taskset"]), "-c", str(cpu)],
        "chrt -f 1": [str(tools["chrt"]), "-f", "1"],
    }
    kept: list[str] = []
    refused = []
    for name, part in parts.items():
        why = _refused(tuple(part))
        if why is None:
            kept += part
        else:
            refused.append(f"{name}: {why}")
    return kept, "; ".join(refused) or None


@functools.cache
def _refused(prefix: tuple[str, ...]) -> str | None:
    """Why `prefix true` fails here, or None when it runs."""
    completed = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if completed.returncode == 0:
        return None
    lines = completed.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {completed.returncode}"


def warm_page_cache(folder: Path) -> None:
    """Ask the kernel to read the packages' libraries now: a builder thread that waits for a page
    from disk lets the other run first, and the interleaving is part of an int8 engine's bytes."""
    for library in folder.rglob("*.so*"):
        with contextlib.suppress(OSError, AttributeError):  # fadvise: Linux, and only a hint
            descriptor = os.open(library, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(descriptor)


def worker_command(folder: Path) -> list[str]:
    """The interpreter command that runs the worker script from `folder` (packages_at_fixed_path)."""
    return [
        str(base_interpreter()),
        "-E",  # no PYTHON* variables
        "-s",  # no user site folder
        "-S",  # no site: sys.path is the script's folder and the standard library, nothing else
        "-B",  # write no .pyc ...
        "-X",
        f"pycache_prefix={folder / NO_PYCACHE}",  # ... and read none: compile everything, every time
        str(folder / SCRIPT),
        "build-request.json",
    ]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def dies_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the builder process get SIGKILL when the process that starts it
    (a worker) dies, kill -9 included: the builder otherwise went on for seconds, holding its CPU
    and writing into a work dir the next run removes. Set between fork and exec, so nothing is
    loaded into the builder (its engine bytes depend on what it allocates); it survives the exec
    chain of setarch, taskset and chrt (none is set-user-ID). None off Linux. The signal fires when
    the starting *thread* ends: the worker builds on its main thread."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm
