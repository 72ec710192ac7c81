"""Disc import against the read+hash limit and against dcmmkdir + sha256sum, on the same disc.

    .venv/bin/python bench/disc_import.py [--files 1001] [--rows 512] [--disc PATH] [--runs 3]

Builds a synthetic CT disc (tests/archive/discs.py: 512×512 16-bit, ~0.5 MB a file, with a
DICOMDIR) in a temp folder unless --disc names one, reads it once to warm the page cache, then
times in one run (best of --runs, warm cache):
  (a) the limit: every file read and SHA-256 hashed by 2 processes (a pre-started Pool);
  (b) ours: archive.indexer.index_disc with DISC_IMPORT_WORKERS=2, without and with the PDI check,
      and the full services.disc_import (indexer + PDI + rows + ledger event) on SQLite;
  (c) dcmmkdir (DICOMDIR to a scratch file) + sha256sum over every file.
Targets: time_a / time_ours ≥ 0.5 and time_c / time_ours ≥ 4. Also prints peak memory (RSS of
this process plus every descendant, sampled every 10 ms) for that disc and for a small disc with
one element declaring 2 GB.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _hash_one(path: str) -> str:
    with open(path, "rb", buffering=0) as f:
        return hashlib.sha256(f.read()).hexdigest()


def files_under(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink())


class PeakMemory:
    """Peak of the summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.01):
        import psutil

        self.me = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.stop = threading.Event()

    def sample(self) -> int:
        import psutil

        total = self.me.memory_info().rss
        for child in self.me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def __enter__(self):
        def run():
            while not self.stop.is_set():
                self.peak = max(self.peak, self.sample())
                self.stop.wait(self.interval)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def best(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1001)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--disc", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()

    sys.path.insert(0, str(ROOT / "bench"))
    from throwaway_db import file_room, open_database

    database = open_database("sqlite")
    from django.conf import settings

    from archive import indexer, services
    from tests.archive import discs
    from tracker.choices import MediaKind
    from tracker.models import Media

    scratch = Path(tempfile.mkdtemp(prefix="filmroom-disc-bench-"))
    try:
        if options.disc:
            root = options.disc
        else:
            started = time.perf_counter()
            discs.ct_disc(scratch / "disc", files=options.files, series=3, rows=options.rows,
                          cols=options.rows)
            root = scratch / "disc"
            print(f"built disc in {time.perf_counter() - started:.1f} s")
        paths = files_under(root)
        size = sum(os.path.getsize(p) for p in paths)
        print(f"disc: {root}, {len(paths)} files, {size / 1e6:.0f} MB; database {database}")
        print(f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; warm page cache")
        for p in paths:  # warm the cache: every figure below is a warm-cache figure
            _hash_one(p)

        workers = settings.DISC_IMPORT_WORKERS
        with get_context("forkserver").Pool(2) as pool:
            pool.map(_hash_one, paths[:4])
            time_a = best(options.runs, lambda: pool.map(_hash_one, paths, chunksize=8))

        def ours(pdi: bool):
            return indexer.index_disc(root, workers=workers, file_timeout=settings.DISC_FILE_TIMEOUT_SECONDS,
                                      memory_mb=settings.DISC_WORKER_MEMORY_MB, pdi_check=pdi)

        disc = ours(False)
        assert disc.file_count == len(paths) and not disc.problems, disc.problems[:3]
        time_b = best(options.runs, lambda: ours(False))
        time_b_pdi = best(options.runs, lambda: ours(True))

        room = file_room()
        actor = room["users"][0]
        counter = iter(range(10_000))

        def full_import():
            media = Media.objects.create(code=f"CD-BENCH-{next(counter)}", kind=MediaKind.CD,
                                         home_location=room["places"][0])
            return services.disc_import(root=root, media=media, actor=actor)

        with PeakMemory() as memory:
            time_full = best(options.runs, full_import)
        peak_full = memory.peak

        dcmmkdir = shutil.which("dcmmkdir")
        out = scratch / "DICOMDIR.bench"

        def dcmtk():
            out.unlink(missing_ok=True)
            done = subprocess.run(
                [dcmmkdir, "--recurse", "--input-directory", str(root), "--output-file", str(out),
                 "--general-purpose", "DICOM"], capture_output=True, text=True,
            )
            assert done.returncode == 0, done.stderr
            subprocess.run(["sha256sum", *paths], capture_output=True, check=True)

        time_c = best(options.runs, dcmtk)

        print()
        print(f"(a) read + sha256, 2 processes         {time_a:7.3f} s  {size / time_a / 1e6:6.0f} MB/s")
        print(f"(b) index_disc (2 workers, no PDI)     {time_b:7.3f} s  {size / time_b / 1e6:6.0f} MB/s")
        print(f"    index_disc with the PDI check      {time_b_pdi:7.3f} s")
        print(f"    disc_import (all of it, SQLite)    {time_full:7.3f} s")
        print(f"(c) dcmmkdir + sha256sum               {time_c:7.3f} s")
        print()
        print(f"index_disc vs limit: time_a/time_b = {time_a / time_b:.2f}   (target ≥ 0.5)")
        print(f"disc_import vs limit: time_a/time_full = {time_a / time_full:.2f}")
        print(f"vs dcmmkdir+sha256sum: time_c/time_b = {time_c / time_b:.1f}×, "
              f"time_c/time_full = {time_c / time_full:.1f}×   (target ≥ 4×)")

        # Memory: the whole import of this disc, then a small disc with one 2 GB-declared element.
        huge_root = scratch / "huge"
        discs.ct_disc(huge_root, files=20, series=1, with_dicomdir=False, rows=options.rows,
                      cols=options.rows, patient_id="MRN-HUGE")
        discs.huge_length_file(huge_root, declared=2**31 - 2)
        with PeakMemory() as memory:
            huge = indexer.index_disc(huge_root, workers=workers, memory_mb=settings.DISC_WORKER_MEMORY_MB,
                                      file_timeout=settings.DISC_FILE_TIMEOUT_SECONDS, pdi_check=False)
        with PeakMemory() as idle:
            time.sleep(0.2)
        print()
        print(f"peak RSS, this process + workers: {peak_full / 1e6:.0f} MB for the {len(paths)}-file "
              f"import; {memory.peak / 1e6:.0f} MB for the disc with a 2 GB-declared element "
              f"(idle process: {idle.peak / 1e6:.0f} MB)")
        print("2 GB element reported as:", [p for p in huge.problems if p["path"].endswith("HUGE")])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
