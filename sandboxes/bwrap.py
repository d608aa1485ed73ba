"""Command lines for the local sandbox provider: bubblewrap, nsenter and the small `sh`
scripts that run around a command.

Kept apart from the process bookkeeping in `sandboxes.local` so that what a sandbox can see
and how a command reaches it read in one place. The scripts are constants; user data (argv,
paths, env values) only ever reaches them as positional parameters or shell-quoted text.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

SANDBOX_HOME = "/home/agent"
SANDBOX_WORKDIR = f"{SANDBOX_HOME}/workspace"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
HOSTNAME = "sandbox"
SH = "/bin/sh"

# Top-level host entries that are symlinks into /usr on a merged-/usr host; on an older
# split layout they are real directories and get bound read-only instead.
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# A read-only mount on or above these would hide or break the sandbox's own mounts.
_RESERVED = ("/proc", "/dev", SANDBOX_HOME)

# The sandbox environment travels to the in-sandbox wrapper in this one variable, as
# shell-quoted `export` lines. Not as `env -i K=V` argv: nsenter's argv is readable by every
# host user for the whole command (API keys). Not as plain variables of nsenter either:
# LD_PRELOAD and friends would then be honoured by nsenter/setpriv, which still hold root.
ENV_CARRIER = "_UPSTREAM_SANDBOX_ENV"

# $1 = cwd, then argv. Runs after capabilities are dropped; eval only sees our own quoting.
_WRAPPER = (
    f'eval "${ENV_CARRIER}"; unset {ENV_CARRIER}; '
    'cd -- "$1" || exit 2; unset OLDPWD; shift; exec "$@"'
)

# The keeper records its pid and its child's, then waits so that bwrap (--die-with-parent)
# keeps a live parent. fd 3 receives bwrap's --info-fd JSON, fd 4 the payload's ready line.
KEEPER = (
    'state=$1; shift; echo $$ >"$state/keeper.pid"; '
    '"$@" 3>"$state/info.json" 4>"$state/ready" & '
    'echo $! >"$state/payload.pid"; wait $!'
)
# bwrap reports the child pid before it has finished mounting; the payload only runs in the
# finished sandbox, so its line on fd 4 says nsenter may go in.
PAYLOAD = (SH, "-c", "echo ready >&4 && exec sleep infinity 3>&- 4>&-")

# start_process: `setsid -f` makes the runner a new session (its pid = the process group id)
# that the exec does not wait for.
_LAUNCHER = (
    'runner=$1 log=$2 ex=$3; shift 3; mkdir -p -- "${log%/*}" "${ex%/*}" || exit 1; '
    'rm -f -- "$ex"; : >>"$log" || exit 1; '
    'exec setsid -f /bin/sh -c "$runner" sh "$log" "$ex" "$@"'
)
# Prints its pid through the exec's stdout, then lets go of it; runs argv in the foreground
# and publishes the exit code by rename, once the output is complete. TERM/INT/HUP are
# trapped (the trap runs after the child ends) so a group-wide SIGTERM still records the
# child's code; trapped rather than ignored, as ignored signals would be inherited by argv.
_RUNNER = (
    'log=$1 ex=$2; shift 2; echo $$; exec >>"$log" 2>&1 </dev/null; '
    "trap : TERM INT HUP; "
    '"$@"; code=$?; '
    'printf \'%s\\n\' "$code" >"$ex.tmp.$$" && mv -f -- "$ex.tmp.$$" "$ex"'
)


def base_env(home: str) -> dict[str, str]:
    """The environment every sandbox command starts from (spec and call env go on top)."""
    return {"HOME": home, "PATH": SANDBOX_PATH, "USER": "agent", "LANG": "C.UTF-8"}


def check_mount(path: str, *, kind: str = "read-only") -> None:
    """Reject mount paths that are relative, unnormalised or would shadow the sandbox layout."""
    if not path.startswith("/") or os.path.normpath(path) != path or path == "/":
        raise ValueError(f"{kind} mount must be an absolute, normalised path: {path!r}")
    for reserved in _RESERVED:
        if path == reserved or path.startswith(reserved + "/") or reserved.startswith(path + "/"):
            raise ValueError(f"{kind} mount {path!r} would shadow {reserved}")
    if not os.path.exists(path):
        raise ValueError(f"{kind} mount {path!r} does not exist on the host")


def env_carrier(env: Mapping[str, str]) -> dict[str, str]:
    """The whole process environment for `wrap`. Names must already be validated."""
    return {ENV_CARRIER: "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())}


def wrap(cwd: str, argv: Sequence[str]) -> list[str]:
    """Run argv in cwd with the environment from `env_carrier`, without a shell parsing it."""
    return [SH, "-c", _WRAPPER, "sh", cwd, *argv]


def launcher(log_path: str, exit_path: str, argv: Sequence[str]) -> list[str]:
    """Start argv detached in its own process group; prints the group id and returns."""
    return [SH, "-c", _LAUNCHER, "sh", _RUNNER, log_path, exit_path, *argv]


def signal_group(signal_name: str, pgid: int) -> list[str]:
    return [SH, "-c", 'kill -s "$1" -- "-$2" 2>/dev/null; exit 0', "sh", signal_name, str(pgid)]


def nsenter(nsenter_bin: str, setpriv_bin: str, pid: int, command: Sequence[str]) -> list[str]:
    """Run command in the namespaces, root and cwd of the sandbox whose pid 1 is `pid`.

    nsenter forks (because of -p) and waits: the command is its child, in nsenter's process
    group, so killing that group from the host reaches it. Capabilities are dropped first:
    otherwise commands would hold all of host root's, e.g. CAP_NET_ADMIN over the host
    network namespace the sandbox shares, or CAP_SYS_ADMIN to remount /usr writable.
    """
    return [
        nsenter_bin,
        *("-t", str(pid), "-m", "-p", "-u", "-i", "-r", "-w", "--"),
        setpriv_bin,
        *("--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"),
        *command,
    ]


def _resolv_conf_target() -> str | None:
    """Host resolv.conf target when it lives outside /etc and /usr.

    systemd-resolved hosts make /etc/resolv.conf a symlink into /run, which the sandbox does
    not mount; without the target, name resolution fails inside.
    """
    link = Path("/etc/resolv.conf")
    if not link.is_symlink():
        return None
    target = os.path.realpath(link)
    if target.startswith(("/etc/", "/usr/")) or not os.path.exists(target):
        return None
    return target


def build_argv(
    bwrap: str,
    *,
    home: Path,
    readonly_mounts: Sequence[str],
    info_fd: int,
    command: Sequence[str],
    writable_mounts: Sequence[str] = (),
) -> list[str]:
    """`bwrap` argv that runs `command` as pid 2 of a fresh sandbox on the host's /usr.

    `home` (host path) is bound writable at SANDBOX_HOME; nothing else of the host is
    writable, and the host home, the data dir and the project tree are absent. The network
    is shared with the host on purpose (package registries, previews on 127.0.0.1).
    Everything here is readable by host users for the sandbox's life: no secrets.
    """
    argv = [bwrap, "--ro-bind", "/usr", "/usr"]
    for name in _ROOT_LINKS:
        host = Path("/", name)
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    argv += ["--ro-bind", "/etc", "/etc"]
    resolv = _resolv_conf_target()
    if resolv is not None:
        argv += ["--ro-bind-try", resolv, resolv]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - private tmpfs
    # `-try`: a repo directory removed from the host after creation must not keep the
    # sandbox from starting again; only the clone inside fails then.
    for path in readonly_mounts:
        argv += ["--ro-bind-try", path, path]
    for path in writable_mounts:
        argv += ["--bind-try", path, path]
    argv += ["--bind", str(home), SANDBOX_HOME]
    argv += [
        *("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"),
        *("--hostname", HOSTNAME, "--die-with-parent", "--new-session"),
        *("--cap-drop", "ALL", "--clearenv"),
    ]
    for key, value in base_env(SANDBOX_HOME).items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", SANDBOX_WORKDIR, "--info-fd", str(info_fd), "--", *command]
    return argv
