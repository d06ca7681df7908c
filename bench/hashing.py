"""Benchmark: trtbuild's content hashing (BLAKE3) against sha256 and b3sum on the same file.

Issue 12, target 3: content hashing of large inputs >= 3 GB/s. One run prints, side by side, the
throughput of each way of hashing one file (random bytes, 1 GiB by default) and its ratio to
trtbuild's; the methods take turns within each round, so machine load hits them alike:

- trtbuild          trtbuild.store.hashing.digest_file (what the stat cache and the CAS call);
- blake3 mmap       the blake3 package on all cores through update_mmap (what trtbuild gives up by
                    reading instead of mapping: a file truncated while mapped is a SIGBUS);
- reader thread     a candidate, not trtbuild's: a second thread reads ahead while the caller hashes
                    (both release the GIL); paired runs under load found it dearer in CPU and wall,
                    an idle machine may judge otherwise;
- hashlib sha256    what trtbuild used before (OpenSSL, one core);
- sha256sum, b3sum  the coreutils and BLAKE3 command-line tools (b3sum on all cores, and with
                    --num-threads 1); without b3sum, the blake3 package on one thread stands in.

The file is read once before timing, so every method reads it from the page cache (cold-cache
throughput is the disk's). Wall seconds give GB/s; CPU seconds (user+sys of this process for the
in-process methods, of the child for the tools) show what each costs the machine. Then a 100 KB
file, the small-file path, hashed many times in a row. `--sweep` times one thread against all cores
for sizes from 1 to 512 MiB: whether blake3's own threads pay (hashing.py: new_hasher).

Usage: python bench/hashing.py [--size-mib 1024] [--repeat 5] [--path FILE] [--sweep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import blake3

from trtbuild.store import hashing

Sample = tuple[float, float]  # wall seconds, CPU seconds
Method = Callable[[Path], Sample]
GB = 1e9


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def in_process(hash_file: Callable[[Path], object]) -> Method:
    def timed(path: Path) -> Sample:
        cpu, wall = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
        hash_file(path)
        return time.perf_counter() - wall, cpu_seconds(resource.RUSAGE_SELF) - cpu

    return timed


def tool(*command: str) -> Method:
    def timed(path: Path) -> Sample:
        cpu, wall = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run([*command, str(path)], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - wall, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu

    return timed


def hashlib_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def blake3_mmap(threads: int) -> Callable[[Path], str]:
    def hash_file(path: Path) -> str:
        hasher = blake3.blake3(max_threads=threads)
        hasher.update_mmap(path)
        return hasher.hexdigest()

    return hash_file


def blake3_reader_thread(path: Path) -> str:
    """A candidate, not trtbuild's: one thread reads the next 1 MiB while the caller hashes the last
    one (both release the GIL), so the page-cache copy can overlap the hashing."""
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[bytearray, int]] = queue.SimpleQueue()
    for _ in range(4):
        free.put(bytearray(hashing.CHUNK_SIZE))

    def read() -> None:
        with open(path, "rb", buffering=0) as f:
            while True:
                buffer = free.get()
                count = f.readinto(buffer) or 0
                full.put((buffer, count))
                if not count:
                    return

    reader = threading.Thread(target=read)
    reader.start()
    hasher = blake3.blake3()
    while (item := full.get())[1]:
        hasher.update(memoryview(item[0])[: item[1]])
        free.put(item[0])
    reader.join()
    return hasher.hexdigest()


def methods() -> dict[str, Method]:
    found: dict[str, Method] = {
        "trtbuild (blake3, reads)": in_process(hashing.digest_file),
        "blake3 mmap, all cores": in_process(blake3_mmap(blake3.blake3.AUTO)),
        "blake3 reads + reader thread": in_process(blake3_reader_thread),
        "hashlib sha256": in_process(hashlib_sha256),
        "sha256sum": tool("sha256sum"),
    }
    if shutil.which("b3sum"):
        found["b3sum"] = tool("b3sum")
        found["b3sum --num-threads 1"] = tool("b3sum", "--num-threads", "1")
    else:
        found["blake3 mmap, 1 thread (no b3sum)"] = in_process(blake3_mmap(1))
    return found


def measure(path: Path, named: dict[str, Method], repeat: int) -> dict[str, list[Sample]]:
    """Each method once per round, in turn, `repeat` rounds."""
    samples: dict[str, list[Sample]] = {name: [] for name in named}
    for _ in range(repeat):
        for name, method in named.items():
            samples[name].append(method(path))
    return samples


def table(samples: dict[str, list[Sample]], size: int, reference: str) -> list[str]:
    walls = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
    cpus = {name: statistics.median(s[1] for s in runs) for name, runs in samples.items()}
    lines = [f"{'method':36} {'GB/s':>6} {'wall s':>7} {'CPU s':>6}  {'trtbuild is x faster':>20}"]
    for name in samples:
        speedup = walls[name] / walls[reference]
        lines.append(
            f"{name:36} {size / walls[name] / GB:6.2f} {walls[name]:7.3f} {cpus[name]:6.3f}  {speedup:20.2f}"
        )
    return lines


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 64 << 20))
            f.write(block)
            left -= len(block)


def small_files(tmp: Path, repeat: int) -> list[str]:
    """The 100 KB path: microseconds per file, hashed 2,000 times per round."""
    path = tmp / "small.bin"
    write_random(path, 100_000)
    named = {"trtbuild (blake3)": hashing.digest_file, "hashlib sha256 (before)": hashlib_sha256}
    per_file: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(repeat):
        for name, hash_file in named.items():
            started = time.perf_counter()
            for _ in range(2000):
                hash_file(path)
            per_file[name].append((time.perf_counter() - started) / 2000)
    medians = {name: statistics.median(values) for name, values in per_file.items()}
    ratio = medians["hashlib sha256 (before)"] / medians["trtbuild (blake3)"]
    return [f"{name:36} {value * 1e6:8.1f} us/file" for name, value in medians.items()] + [
        f"{'trtbuild is x faster':36} {ratio:8.2f}"
    ]


def sweep(tmp: Path, repeat: int) -> list[str]:
    """One hashing thread against all cores (plain 1 MiB reads, no read-ahead), for sizes 1-512 MiB."""
    lines = [f"{'MiB':>5} {'1 thread GB/s':>14} {'all cores GB/s':>15} {'ratio':>6}"]
    for mib in (1, 4, 16, 64, 128, 256, 512):
        path = tmp / f"sweep-{mib}.bin"
        write_random(path, mib << 20)
        rates = []
        for threads in (1, blake3.blake3.AUTO):
            walls = []
            for _ in range(max(repeat, 1024 // mib)):
                started = time.perf_counter()
                with open(path, "rb", buffering=0) as f:
                    hasher = blake3.blake3(max_threads=threads)
                    buffer = bytearray(hashing.CHUNK_SIZE)
                    view = memoryview(buffer)
                    while count := f.readinto(buffer):
                        hasher.update(view[:count])
                walls.append(time.perf_counter() - started)
            rates.append((mib << 20) / statistics.median(walls) / GB)
        lines.append(f"{mib:5} {rates[0]:14.2f} {rates[1]:15.2f} {rates[1] / rates[0]:6.2f}")
        path.unlink()
    return lines


def conditions() -> list[str]:
    package = Path(hashing.__file__).parent / "__pycache__"
    pyc = sorted(p.name for p in package.glob("hashing.*.pyc")) if package.is_dir() else []
    return [
        f"python {sys.version.split()[0]}, blake3 {blake3.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}",
        f".pyc: PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}, "
        f"trtbuild/store/__pycache__ has {pyc or 'no hashing .pyc'} (does not matter for throughput)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are printed")
    parser.add_argument("--path", type=Path, help="the big file (created, then deleted); default in /tmp")
    parser.add_argument("--sweep", action="store_true", help="also time 1 thread vs all cores, 1-512 MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trtbuild-bench-hashing-") as scratch:
        tmp = Path(scratch)
        path = args.path or tmp / "big.bin"
        size = args.size_mib << 20
        print("\n".join(conditions()))
        write_random(path, size)
        try:
            # Read once, so every method reads from the page cache; and the BLAKE3 ways must agree.
            same = {hashing.digest_file(path), "blake3:" + blake3_reader_thread(path)}
            assert same == {"blake3:" + blake3_mmap(1)(path)}, same
            print(
                f"\n{size / 2**30:.2f} GiB of random bytes in the page cache, median of {args.repeat} rounds:"
            )
            samples = measure(path, methods(), args.repeat)
            print("\n".join(table(samples, size, "trtbuild (blake3, reads)")))
        finally:
            if args.path:
                path.unlink(missing_ok=True)
        print("\nsmall file (100 KB, in the page cache):")
        print("\n".join(small_files(tmp, args.repeat)))
        if args.sweep:
            print("\nwhere hashing on all cores starts to pay (plain 1 MiB reads, no read-ahead):")
            print("\n".join(sweep(tmp, args.repeat)))
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
