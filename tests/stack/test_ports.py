from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from stack.ports import (
    PortInUseError,
    ensure_port_free,
    ensure_remembered_port_free,
    load_or_allocate_ports,
    port_is_free,
)


def test_ports_are_allocated_once_and_remembered(data_dir: Path) -> None:
    first = load_or_allocate_ports(data_dir)
    values = list(first.as_dict().values())
    assert len(set(values)) == 3
    assert json.loads((data_dir / "ports.json").read_text()) == first.as_dict()
    assert load_or_allocate_ports(data_dir) == first
    assert (data_dir / "ports.json").stat().st_mode & 0o077 == 0


def test_missing_entries_are_added_and_known_ones_kept(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "ports.json").write_text(json.dumps({"postgres": 45678}))
    ports = load_or_allocate_ports(data_dir)
    assert ports.postgres == 45678
    assert len({ports.postgres, ports.temporal, ports.temporal_ui}) == 3
    assert json.loads((data_dir / "ports.json").read_text()) == ports.as_dict()


def test_corrupt_ports_file_is_a_clear_error(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "ports.json").write_text("{not json")
    with pytest.raises(RuntimeError, match=r"ports\.json is unreadable"):
        load_or_allocate_ports(data_dir)
    (data_dir / "ports.json").write_text(json.dumps({"postgres": "x"}))
    with pytest.raises(RuntimeError, match="not a port number"):
        load_or_allocate_ports(data_dir)


def test_taken_remembered_port_is_a_clear_error(data_dir: Path) -> None:
    ports = load_or_allocate_ports(data_dir)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", ports.temporal))
        listener.listen()
        assert not port_is_free(ports.temporal)
        with pytest.raises(PortInUseError) as info:
            ensure_remembered_port_free(data_dir, ports.temporal, name="temporal")
    assert str(info.value) == (
        f"port {ports.temporal} (temporal) is already in use by another process; "
        f"stop it or remove {data_dir / 'ports.json'} to pick new ports"
    )
    assert port_is_free(ports.temporal)


def test_listener_on_all_interfaces_counts_as_taken() -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"^port {port} \(api\) is already in use"):
            ensure_port_free(port, name="api", hint="choose another --port")
