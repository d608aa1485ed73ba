"""Ports of the embedded servers, remembered in `<data_dir>/ports.json`.

First start: free ports are taken from the OS. Later starts reuse them, so URLs printed once
stay valid and two stacks with different data dirs can run side by side. A remembered port
that someone else now holds is an error, never a silent attach to that other server.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path

PORTS_FILE = "ports.json"
LOOPBACK = "127.0.0.1"


class PortInUseError(RuntimeError):
    """A port this stack needs is held by another process."""


@dataclass(frozen=True)
class StackPorts:
    postgres: int
    temporal: int
    temporal_ui: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def ports_file(data_dir: Path) -> Path:
    return data_dir / PORTS_FILE


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a server could bind `host:port` now.

    SO_REUSEADDR mirrors what PostgreSQL and Go servers set: without it, TIME_WAIT leftovers
    of our own previous run would look like "taken" right after a restart. A live listener
    (also one on 0.0.0.0) still makes the bind fail.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    for family, socktype, proto, _canon, sockaddr in infos:
        with socket.socket(family, socktype, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError:
                return False
    return True


def ensure_port_free(port: int, *, name: str, host: str = LOOPBACK, hint: str) -> None:
    """Raise PortInUseError ("port 7233 (temporal) is already in use ...; <hint>")."""
    if not port_is_free(port, host):
        raise PortInUseError(f"port {port} ({name}) is already in use by another process; {hint}")


def remembered_port_hint(data_dir: Path) -> str:
    return f"stop it or remove {ports_file(data_dir)} to pick new ports"


def ensure_remembered_port_free(data_dir: Path, port: int, *, name: str) -> None:
    ensure_port_free(port, name=name, hint=remembered_port_hint(data_dir))


def _allocate(count: int) -> list[int]:
    """`count` distinct free ports from the OS (all sockets held open until every one is picked)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _read(path: Path) -> dict[str, int]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path} is unreadable ({exc}); fix or remove it") from exc
    if not isinstance(raw, dict):
        raise RuntimeError(f"{path} must hold a JSON object; fix or remove it")
    result: dict[str, int] = {}
    for key, value in raw.items():
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
            result[str(key)] = value
        else:
            raise RuntimeError(f"{path}: {key!r} is not a port number; fix or remove it")
    return result


def _write_atomic(path: Path, ports: dict[str, int]) -> None:
    # Write + rename so a crash mid-write never leaves half a file (which would then be an
    # error on every later start).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(ports, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_or_allocate_ports(data_dir: Path) -> StackPorts:
    """Ports from `<data_dir>/ports.json`; missing entries are allocated and saved.

    Does not check that remembered ports are still free: each server checks its own port
    right before it starts (after clearing its own orphans from a crashed run).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = ports_file(data_dir)
    known = _read(path)
    names = [f.name for f in fields(StackPorts)]
    missing = [n for n in names if n not in known]
    if missing:
        taken = set(known.values())
        fresh = [p for p in _allocate(len(missing) + len(taken)) if p not in taken]
        known.update(zip(missing, fresh, strict=False))
        _write_atomic(path, known)
    ports = StackPorts(**{n: known[n] for n in names})
    if len(set(ports.as_dict().values())) != len(names):
        raise RuntimeError(f"{path} assigns the same port twice; fix or remove it")
    return ports
