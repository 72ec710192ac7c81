"""Disc import against the read+hash limit and against dcmmkdir + sha256sum, on the same disc.

    .venv/bin/python bench/disc_import.py [--files 1001] [--rows 512] [--disc PATH] [--runs 5]
        [--no-cli]

Builds a synthetic CT disc (tests/archive/discs.py: 512×512 16-bit, ~0.5 MB a file, with a
DICOMDIR) in a temp folder unless --disc names one, reads it once to warm the page cache, then
times, warm cache, each figure the best of --runs rounds; the rounds interleave every
contender (a, b, b+PDI, full, c, a, ...) so a burst of other work on a shared machine hits
all of them alike:
  (a) the limit: every file read and SHA-256 hashed by 2 processes (a pre-started Pool);
  (b) archive.indexer.index_disc with DISC_IMPORT_WORKERS readers, without and with the PDI
      check (services.disc_import always runs it);
  (full) services.disc_import, the whole import as the web app and the command run it: indexer,
      PDI check, rows, manifest and ledger event on SQLite, in a process that has imported
      before (Django set up, the readers' fork server running);
  (c) dcmmkdir (DICOMDIR to a scratch file) + sha256sum over every file.
Targets (issue 5): time_a / time_ours ≥ 0.5 and time_c / time_ours ≥ 4, for "ours" = full (the
import) and, for reference, b. Then, unless --no-cli, `manage.py import_disc --json` timed end to
end as a fresh process (interpreter, Django, fork server and all), with `manage.py check` as the
start-up alone. Also prints peak memory (RSS of this process plus every descendant, sampled
every 10 ms) for the full import and for a small disc with one element declaring 2 GB.
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
    """Peaks of the summed RSS and of the summed PSS of this process and all its descendants,
    sampled in a thread. RSS counts the pages readers share with their fork server once per
    process; PSS splits them among the sharers, so its sum is the memory actually used."""

    def __init__(self, interval: float = 0.01):
        import psutil

        self.me = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.stop = threading.Event()

    def sample(self) -> tuple[int, int]:
        import psutil

        rss = pss = 0
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                info = process.memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += info.pss
        return rss, pss

    def __enter__(self):
        def run():
            while not self.stop.is_set():
                rss, pss = self.sample()
                self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
                self.stop.wait(self.interval)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def cpu_seconds() -> float:
    """CPU time of this process and every descendant, living or reaped (the readers are the fork
    server's children: its children_* times count them once they have exited)."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def timed(work) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    cpu = cpu_seconds()
    started = time.perf_counter()
    work()
    wall = time.perf_counter() - started
    return wall, cpu_seconds() - cpu


def interleaved(runs: int, contenders: dict) -> dict[str, tuple[float, float]]:
    """Best wall time of each contender over `runs` rounds, every round running each once in
    turn, with the least CPU time any of its rounds used."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, work in contenders.items():
            times[name].append(timed(work))
    return {name: (min(w for w, _ in values), min(c for _, c in values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1001)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--disc", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end command timing")
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
        print(f"cpus: {os.cpu_count()}, load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              "warm page cache")
        for p in paths:  # warm the cache: every figure below is a warm-cache figure
            _hash_one(p)

        workers = settings.DISC_IMPORT_WORKERS
        # The indexer's fork server is the process-wide one: set its preload before the limit's
        # Pool starts that server, as it is in the application (where nothing else uses it).
        indexer._context()

        def ours(pdi: bool):
            return indexer.index_disc(root, workers=workers, file_timeout=settings.DISC_FILE_TIMEOUT_SECONDS,
                                      memory_mb=settings.DISC_WORKER_MEMORY_MB, pdi_check=pdi)

        room = file_room()
        actor = room["users"][0]
        counter = iter(range(10_000))

        def full_import():
            media = Media.objects.create(code=f"CD-BENCH-{next(counter)}", kind=MediaKind.CD,
                                         home_location=room["places"][0])
            result = services.disc_import(root=root, media=media, actor=actor)
            assert not result.unchanged and result.manifest.file_count == len(paths)

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

        with get_context("forkserver").Pool(2) as pool:
            pool.map(_hash_one, paths[:4])
            disc = ours(True)  # starts the fork server; checks the disc reads clean
            assert disc.file_count == len(paths) and not disc.problems, disc.problems[:3]
            assert disc.pdi_report.get("conformant") is not None, disc.pdi_report
            full_import()
            best = interleaved(options.runs, {
                "a": lambda: pool.map(_hash_one, paths, chunksize=8),
                "b": lambda: ours(False),
                "b_pdi": lambda: ours(True),
                "full": full_import,
                "c": dcmtk,
            })
        with PeakMemory() as memory:  # the limit's Pool is gone: only the import is counted
            full_import()
        peak_full = memory
        time_a, time_b, time_b_pdi, time_full, time_c = (
            best[name][0] for name in ("a", "b", "b_pdi", "full", "c"))
        cpu = {name: value[1] for name, value in best.items()}

        print(f"load average after the timed rounds {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print()
        print("                                          wall (best)  throughput   CPU (least)")
        print(f"(a) read + sha256, 2 processes           {time_a:7.3f} s  {size / time_a / 1e6:6.0f} MB/s"
              f"   {cpu['a']:5.2f} s")
        print(f"(b) index_disc ({workers} readers, no PDI)      {time_b:7.3f} s  {size / time_b / 1e6:6.0f} MB/s"
              f"   {cpu['b']:5.2f} s")
        print(f"    index_disc with the PDI check        {time_b_pdi:7.3f} s  {size / time_b_pdi / 1e6:6.0f} MB/s"
              f"   {cpu['b_pdi']:5.2f} s")
        print(f"(full) disc_import (all of it, SQLite)   {time_full:7.3f} s  {size / time_full / 1e6:6.0f} MB/s"
              f"   {cpu['full']:5.2f} s")
        print(f"(c) dcmmkdir + sha256sum                 {time_c:7.3f} s  {size / time_c / 1e6:6.0f} MB/s"
              f"   {cpu['c']:5.2f} s")
        print()
        for label, ours_time in (("disc_import (the import)", time_full), ("index_disc + PDI", time_b_pdi),
                                 ("index_disc, no PDI", time_b)):
            print(f"{label:26} vs limit: {time_a / ours_time:5.2f}× (target ≥ 0.5)   "
                  f"vs dcmmkdir+sha256sum: {time_c / ours_time:4.1f}× faster (target ≥ 4)")
        print(f"CPU time, which other work on the machine distorts less: the import uses "
              f"{cpu['full'] / cpu['a']:.2f}× the limit's, {cpu['c'] / cpu['full']:.2f}× less than dcmmkdir + "
              f"sha256sum (index_disc + PDI {cpu['b_pdi'] / cpu['a']:.2f}×, no PDI {cpu['b'] / cpu['a']:.2f}×)")

        if not options.no_cli:
            cli(root, paths, room, runs=options.runs)

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
        print(f"peak memory, this process + fork server + readers, RSS (PSS): "
              f"{peak_full.peak / 1e6:.0f} MB ({peak_full.peak_pss / 1e6:.0f} MB) for the {len(paths)}-file import; "
              f"{memory.peak / 1e6:.0f} MB ({memory.peak_pss / 1e6:.0f} MB) for the disc with a 2 GB-declared "
              f"element; this process idle, fork server running: {idle.peak / 1e6:.0f} MB "
              f"({idle.peak_pss / 1e6:.0f} MB)")
        print("2 GB element reported as:", [p for p in huge.problems if p["path"].endswith("HUGE")])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cli(root: Path, paths: list[str], room: dict, *, runs: int) -> None:
    """`manage.py import_disc` end to end in a fresh process, against `manage.py check` alone."""
    from tracker.choices import MediaKind
    from tracker.models import Media

    manage = [sys.executable, str(ROOT / "manage.py")]
    codes = iter(range(10_000))

    def command():
        code = f"CD-CLI-{next(codes)}"
        Media.objects.create(code=code, kind=MediaKind.CD, home_location=room["places"][0])
        done = subprocess.run([*manage, "import_disc", str(root), "--media", code, "--user",
                               room["users"][0].username, "--json"], capture_output=True, text=True,
                              cwd=ROOT)
        assert done.returncode == 0 and '"status": "imported"' in done.stdout, done.stderr[-2000:]

    def check():
        subprocess.run([*manage, "check"], capture_output=True, check=True, cwd=ROOT)

    best = interleaved(max(2, runs // 2), {"cli": command, "check": check})
    print(f"manage.py import_disc, fresh process     {best['cli'][0]:7.3f} s  "
          f"(manage.py check alone: {best['check'][0]:.3f} s; {len(paths)} files)")


if __name__ == "__main__":
    main()
