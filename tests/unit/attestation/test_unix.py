"""Unix workload attestation from SO_PEERCRED and /proc, on real processes."""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tabard.attestation.unix import (
    CLOCK_TICKS,
    ExecutableHasher,
    PeerCredentials,
    ProcessAttestationError,
    ProcessEvidence,
    attest_peer,
    attest_process,
    peer_credentials,
    process_ancestry,
    process_start_ticks,
)

PYTHON = os.path.realpath(sys.executable)
CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.connect(sys.argv[1])\n"
    "s.recv(1)\n"
)


def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@pytest.fixture
def listening() -> Iterator[tuple[socket.socket, str]]:
    directory = tempfile.mkdtemp(prefix="ta-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "s.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen()
    server.settimeout(30)
    yield server, path
    server.close()
    shutil.rmtree(directory, ignore_errors=True)


def _stat_fields(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2 :].split()


def test_attests_this_process() -> None:
    a, b = socket.socketpair()
    with a, b:
        evidence = attest_peer(a)
    assert evidence.pid == os.getpid()
    assert (evidence.uid, evidence.gid) == (os.getuid(), os.getgid())
    assert evidence.ppid == os.getppid()
    assert evidence.exe_path == PYTHON
    assert evidence.exe_sha256 == sha256_of(PYTHON)
    assert evidence.start_ticks == int(_stat_fields(os.getpid())[19])
    assert evidence.start_time == evidence.start_ticks / CLOCK_TICKS
    assert evidence.selectors() == (
        f"unix:uid:{os.getuid()}",
        f"unix:gid:{os.getgid()}",
        f"unix:user:{evidence.user}",
        f"unix:group:{evidence.group}",
        f"unix:path:{PYTHON}",
        f"unix:sha256:{sha256_of(PYTHON)}",
    )


def test_attests_a_child_process(listening: tuple[socket.socket, str]) -> None:
    server, path = listening
    child = subprocess.Popen([sys.executable, "-c", CONNECT, path])
    try:
        conn, _ = server.accept()
        with conn:
            evidence = attest_peer(conn)
            conn.send(b"x")
    finally:
        child.wait(10)
    assert evidence.pid == child.pid
    assert evidence.ppid == os.getpid()
    assert evidence.exe_path == PYTHON
    assert evidence.exe_sha256 == sha256_of(PYTHON)
    assert "unix:uid:0" in evidence.selectors()


def _other_uid_python() -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (PYTHON, f"/usr/bin/python{version}", "/usr/bin/python3"):
        p = Path(candidate)
        if p.exists() and all(os.stat(d).st_mode & 0o001 for d in p.parents):
            return candidate
    raise AssertionError("no Python interpreter is executable by uid 65534")


def test_attests_a_child_of_another_uid(listening: tuple[socket.socket, str]) -> None:
    server, path = listening
    python = _other_uid_python()

    def drop() -> None:
        os.setgid(65534)
        os.setgroups([])
        os.setuid(65534)

    child = subprocess.Popen([python, "-S", "-c", CONNECT, path], preexec_fn=drop)
    try:
        conn, _ = server.accept()
        with conn:
            evidence = attest_peer(conn)
            conn.send(b"x")
    finally:
        child.wait(10)
    assert (evidence.pid, evidence.uid, evidence.gid) == (child.pid, 65534, 65534)
    assert "unix:uid:65534" in evidence.selectors()
    assert "unix:gid:65534" in evidence.selectors()
    assert f"unix:user:{evidence.user}" in evidence.selectors()
    assert evidence.user == "nobody"
    assert evidence.exe_path == os.path.realpath(python)
    assert evidence.exe_sha256 == sha256_of(os.path.realpath(python))


def test_stat_parsing_survives_parentheses_and_spaces_in_comm(tmp_path: Path) -> None:
    odd = tmp_path / "a) (b c"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", odd)
    child = subprocess.Popen([str(odd), "30"])
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{child.pid}/exe") != str(odd) and time.monotonic() < deadline:
            time.sleep(0.01)  # until the exec has happened
        comm = Path(f"/proc/{child.pid}/comm").read_text().strip()
        assert ")" in comm and " " in comm
        ancestry = list(process_ancestry(child.pid))
        assert ancestry[0] == (os.getpid(), process_start_ticks(os.getpid()))
        assert process_start_ticks(child.pid) == int(_stat_fields(child.pid)[19])
        evidence = attest_process(PeerCredentials(child.pid, 0, 0))
        assert evidence.ppid == os.getpid()
        assert evidence.exe_path == str(odd)
        assert evidence.exe_sha256 == sha256_of(str(odd))
    finally:
        child.kill()
        child.wait()


def test_ancestry_walks_up_to_init() -> None:
    chain = list(process_ancestry(os.getpid()))
    assert chain[0][0] == os.getppid()
    assert all(start is not None for _, start in chain)
    assert chain[-1][0] in (1, chain[-1][0])  # ends at init or at the top of this namespace
    assert len({pid for pid, _ in chain}) == len(chain)


def test_hashes_each_executable_once() -> None:
    hasher = ExecutableHasher()
    creds = PeerCredentials(os.getpid(), 0, 0)
    first = attest_process(creds, hasher=hasher)
    second = attest_process(creds, hasher=hasher)
    assert first.exe_sha256 == second.exe_sha256
    assert hasher.hashes_computed == 1


def test_cache_key_changes_with_the_file(tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"one")
    hasher = ExecutableHasher()
    fd = os.open(target, os.O_RDONLY)
    try:
        assert hasher.digest(fd) == hashlib.sha256(b"one").hexdigest()
    finally:
        os.close(fd)
    stat = target.stat()
    target.write_bytes(b"two")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime set back: ctime still moves
    fd = os.open(target, os.O_RDONLY)
    try:
        assert hasher.digest(fd) == hashlib.sha256(b"two").hexdigest()
    finally:
        os.close(fd)
    assert hasher.hashes_computed == 2


def test_a_process_started_after_the_accept_is_refused() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(ProcessAttestationError) as info:
            attest_process(PeerCredentials(child.pid, 0, 0), accepted_boot_time=0.0)
        assert info.value.reason == "pid_reused"
        assert info.value.code == "workload_attestation_failed"
    finally:
        child.kill()
        child.wait()


def test_an_exited_process_is_refused_through_its_pidfd() -> None:
    child = subprocess.Popen(["sleep", "30"])
    pidfd = os.pidfd_open(child.pid)
    try:
        child.kill()
        select.select([pidfd], [], [], 10)  # readable once it has exited (still unreaped)
        with pytest.raises(ProcessAttestationError) as info:
            attest_process(PeerCredentials(child.pid, 0, 0), pidfd=pidfd)
        assert info.value.reason == "process_gone"
    finally:
        os.close(pidfd)
        child.wait()


def test_a_vanished_pid_is_refused() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    with pytest.raises(ProcessAttestationError) as info:
        attest_process(PeerCredentials(child.pid, 0, 0))
    assert info.value.reason == "process_gone"
    assert process_start_ticks(child.pid) is None


def test_peer_credentials_are_the_kernels() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert peer_credentials(a) == PeerCredentials(os.getpid(), os.getuid(), os.getgid())
    tcp = socket.socket()
    with tcp, pytest.raises(ProcessAttestationError):
        peer_credentials(tcp)


def test_evidence_without_names_omits_name_selectors() -> None:
    ev = ProcessEvidence(1, 4242, 4343, 0, 1, "/bin/x", "ab" * 32, None, None)
    assert ev.selectors() == (
        "unix:uid:4242", "unix:gid:4343", "unix:path:/bin/x", f"unix:sha256:{'ab' * 32}"
    )
    assert ev.process_key == (1, 1)
