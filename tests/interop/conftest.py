"""Real parts for the reader interop tests: pcscd with vsmartcard's virtual reader (vpcd), the
tag emulator (vpcd_tag.py) in its own process, and nfcpy's udp driver.

vpcd's readers listen on fixed TCP ports set in /etc/reader.conf.d/vpcd: 35963 (`Virtual PCD
00 00`, used here) and 35964 (`Virtual PCD 00 01`). These tests need those ports, and one test
session at a time uses them: a lock file makes a second session wait. There is one pcscd per
machine: a running one is reused, otherwise the session starts `pcscd --foreground` and stops
it at the end."""

from __future__ import annotations

import fcntl
import json
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

VPCD_PORT = 35963
VPCD_READER = "Virtual PCD 00 00"
EMULATOR = Path(__file__).with_name("vpcd_tag.py")
NFC_EMULATOR = Path(__file__).with_name("nfc_tag.py")


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `condition` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        pause.wait(0.02)


def scard():
    try:
        from smartcard import scard as module
    except ImportError as error:
        pytest.fail(
            f"pyscard is missing ({error}): pip install pyscard "
            "(it builds with Debian swig and libpcsclite-dev)"
        )
    return module


def vpcd_listed() -> bool:
    s = scard()
    hresult, context = s.SCardEstablishContext(s.SCARD_SCOPE_USER)
    if hresult != s.SCARD_S_SUCCESS:
        return False
    try:
        hresult, names = s.SCardListReaders(context, [])
        return hresult == s.SCARD_S_SUCCESS and VPCD_READER in names
    finally:
        s.SCardReleaseContext(context)


class Pcscd:
    """The machine's pcscd: reused when already running, else started (and owned) by the tests."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        running = subprocess.run(
            ["pidof", "pcscd"], capture_output=True, text=True, check=False
        ).stdout.split()
        self.owned = not running
        if self.owned:
            self.start()
        else:
            wait_until(
                vpcd_listed,
                10,
                f"pcscd (pid {' '.join(running)}) to list {VPCD_READER!r}: "
                "install vsmartcard-vpcd and restart pcscd",
            )

    def start(self) -> None:
        binary = shutil.which("pcscd") or next(
            (p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if Path(p).exists()), None
        )
        if not binary:
            pytest.fail("pcscd is not installed: apt-get install pcscd vsmartcard-vpcd")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "--foreground"], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(
            lambda: self.process.poll() is not None or vpcd_listed(),
            10,
            f"pcscd to list {VPCD_READER!r}",
        )
        if self.process.poll() is not None:
            pytest.fail(
                f"pcscd exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}"
            )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.process = None


@pytest.fixture(scope="package")
def vpcd_ports():
    """Hold the machine-wide lock on vpcd's fixed ports while the interop tests run."""
    with open(Path(tempfile.gettempdir()) / "filmroom-vpcd-ports.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                "\nanother test run is using vpcd's ports 35963/35964; waiting for it",
                file=sys.stderr,
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield VPCD_PORT


@pytest.fixture(scope="package")
def pcscd(vpcd_ports, tmp_path_factory):
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    yield daemon
    daemon.stop()


class Emulator:
    """A tag emulator process: commands on its stdin, one event per line on its stdout."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("exited")

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def expect(self, word: str, timeout: float = 5.0) -> str:
        """The next line of the emulator starting with `word` (earlier lines are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"the tag emulator did not say {word!r} within {timeout:g} s; "
                    f"it said {self.seen[-10:]}"
                )
            self.seen.append(line)
            if line.split(" ", 1)[0] == word:
                return line
            if line.startswith(("error", "exited", "Traceback")):
                pytest.fail(f"the tag emulator failed: {line} (after {self.seen[-10:]})")

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class VirtualTag(Emulator):
    """Drives vpcd_tag.py and watches the reader through its own PC/SC context, to wait for what
    pcscd has seen instead of sleeping."""

    def __init__(self, port: int):
        super().__init__(str(EMULATOR), "--port", str(port))
        s = scard()
        self.s = s
        hresult, self.context = s.SCardEstablishContext(s.SCARD_SCOPE_USER)
        assert hresult == s.SCARD_S_SUCCESS, s.SCardGetErrorMessage(hresult)
        self.state = self._look(s.SCARD_STATE_UNAWARE, 0)

    def insert(self, uid: str) -> None:
        self.send(f"insert {uid}")
        self.expect("inserted")

    def remove(self) -> None:
        self.send("remove")
        self.expect("removed")

    def polls(self) -> int:
        self.send("polls")
        return int(self.expect("polls").split()[1])

    def _look(self, current: int, timeout_ms: int) -> int:
        hresult, states = self.s.SCardGetStatusChange(
            self.context, timeout_ms, [(VPCD_READER, current)]
        )
        if hresult & 0xFFFFFFFF not in (0, self.s.SCARD_E_TIMEOUT & 0xFFFFFFFF):
            pytest.fail(f"watching {VPCD_READER!r} failed: {self.s.SCardGetErrorMessage(hresult)}")
        return states[0][1] & ~self.s.SCARD_STATE_CHANGED

    def wait_for_reader(
        self, condition: Callable[[int], bool], what: str, timeout: float = 5.0
    ) -> int:
        """Wait until pcscd reports a reader state for which `condition(state)` holds."""
        deadline = time.monotonic() + timeout
        self.state = self._look(self.state, 0)
        while not condition(self.state):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(
                    f"pcscd did not report {what} within {timeout:g} s (state 0x{self.state:08X})"
                )
            self.state = self._look(self.state, int(left * 1000) + 1)
        return self.state

    def wait_until_empty(self) -> int:
        return self.wait_for_reader(
            lambda state: state & self.s.SCARD_STATE_EMPTY, "an empty reader"
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("quit")
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                pass  # end() below terminates it
        self.end()
        self.s.SCardReleaseContext(self.context)


@pytest.fixture
def virtual_tag(pcscd, vpcd_ports):
    """The tag emulator on `Virtual PCD 00 00`; the reader is empty again after the test."""
    tag = VirtualTag(vpcd_ports)
    tag.wait_until_empty()
    yield tag
    tag.send("remove")
    tag.wait_until_empty()
    tag.close()


class RunningReader:
    """A reader backend's `taps()` running in a thread, as the agent runs it."""

    def __init__(self, backend_factory: Callable[[Callable[..., None]], object]):
        self.logged: list[tuple[str, dict]] = []
        self.backend = backend_factory(lambda event, **fields: self.logged.append((event, fields)))
        self.taps: queue.Queue[tuple[str, float]] = queue.Queue()
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for tap in self.backend.taps(self.stop):
                self.taps.put((tap.uid, time.monotonic()))
        except BaseException as error:
            self.failure = error
            raise

    def next_tap(self, timeout: float = 5.0) -> tuple[str, float]:
        try:
            return self.taps.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(
                f"no tap within {timeout:g} s (reader thread alive: {self.thread.is_alive()}, "
                f"failure: {self.failure!r}, log: {self.logged[-5:]})"
            )

    def next_uid(self, timeout: float = 5.0) -> str:
        return self.next_tap(timeout)[0]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the reader did not notice stop within 10 s"
        assert self.failure is None, f"the reader crashed: {self.failure!r}"


@pytest.fixture
def run_reader():
    """run_reader(lambda log: Backend(..., log=log)) → a RunningReader, stopped after the test."""
    running: list[RunningReader] = []

    def start(factory):
        running.append(RunningReader(factory))
        return running[-1]

    yield start
    for reader in running:
        reader.close()


@pytest.fixture
def uids():
    """Distinct 7-byte NXP-style UIDs for one test."""
    return [f"04A1B2C3D4{n:04X}" for n in range(1, 100)]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def nfc_port():
    """A free loopback UDP port for nfcpy's simulated reader (`udp:localhost:PORT`)."""
    return free_udp_port()


@pytest.fixture
def nfc_tag(nfc_port):
    """nfc_tag(type2=UID) or nfc_tag(type3=IDM): a tag lying on the simulated reader until
    `.end()` takes it away; every tag still there is taken away after the test."""
    try:
        import nfc  # noqa: F401
    except ImportError as error:
        pytest.fail(f"nfcpy is missing ({error}): pip install nfcpy")
    placed: list[Emulator] = []

    def place(*, type2: str | None = None, type3: str | None = None) -> Emulator:
        kind, ident = ("--type2", type2) if type2 else ("--type3", type3)
        placed.append(Emulator(str(NFC_EMULATOR), "--port", str(nfc_port), kind, ident))
        placed[-1].expect("listening", timeout=10)
        return placed[-1]

    yield place
    for tag in placed:
        tag.end()


class AgentProcess:
    """`python -m agent` as a reader station runs it, its JSON log lines parsed as they come."""

    def __init__(
        self, tmp_path: Path, *reader_args: str, server: str | None = None, key: str | None = None
    ):
        self.outbox = tmp_path / "outbox.sqlite3"
        key_file = tmp_path / "reader.key"
        key_file.write_text((key or "no-server-checks-this-key") + "\n")
        if server is None:  # a loopback port where no server listens: reads queue up
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                server = f"http://127.0.0.1:{probe.getsockname()[1]}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "--server",
                server,
                "--key-file",
                str(key_file),
                "--outbox",
                str(self.outbox),
                *reader_args,
            ],
            cwd=Path(__file__).parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "output", "line": line.rstrip()})
        self.events.put({"event": "exited"})

    def expect(self, event: str, timeout: float = 10.0, **fields) -> dict:
        """The next logged event named `event` whose fields include `fields`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                entry = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"the agent did not log {event!r} {fields} within {timeout:g} s: "
                    f"{self.seen[-8:]}"
                )
            self.seen.append(entry)
            if entry["event"] == event and fields.items() <= entry.items():
                return entry
            if entry["event"] in ("exited", "output"):
                pytest.fail(f"the agent stopped or printed a non-JSON line: {self.seen[-8:]}")

    def status(self) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "agent", "status", "--outbox", str(self.outbox)],
            cwd=Path(__file__).parents[2],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail("the agent did not stop within 15 s of SIGTERM")


@pytest.fixture
def start_agent(tmp_path):
    """start_agent("--reader", "pcsc", ..., server=URL, key=KEY) → an AgentProcess, stopped after
    the test (without a server its reads stay queued in its outbox)."""
    agents: list[AgentProcess] = []

    def start(*reader_args: str, server: str | None = None, key: str | None = None) -> AgentProcess:
        agents.append(AgentProcess(tmp_path, *reader_args, server=server, key=key))
        return agents[-1]

    yield start
    for agent in agents:
        agent.stop()
