"""Running git in a branch's sandbox, with credentials that exist only while a command runs.

A network command (clone, fetch, push, ls-remote) gets the token through git's `store`
credential helper reading a file written under the sandbox home just before the command and
deleted right after it. The token is never in argv (every host user can read process command
lines), never in `.git/config` and never in a returned text or error message.

Hazard: for as long as that file exists, anything running in the sandbox as the sandbox user
can read it. Hooks are switched off for network commands so that code from the repository (a
`pre-push` hook, `core.hooksPath` set by the agent) does not run while it is there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shlex
from dataclasses import replace
from urllib.parse import quote, urlsplit

from gitops.credentials import GitCredentials
from gitops.errors import GitAuthError, GitOpError, InvalidGitInput, TransientGitError, scrub_urls
from gitops.refs import InvalidRefName, validate_branch_name
from sandboxes.base import ExecResult, SandboxProvider

logger = logging.getLogger(__name__)

# Never prompt (there is nobody to answer; a prompt hangs until the timeout), never page,
# never open an editor, C messages so that stderr can be matched, and only plain transports
# (`ext::` runs a command).
_BASE_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/false",
    "SSH_ASKPASS": "/bin/false",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=30",
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "LC_ALL": "C",
}
CREDENTIALS_DIR = ".upstream-git"
_CREDENTIAL_PREFIX = "cred-"
# Files left behind by a worker that died mid-command are swept after this long; no network
# command is expected to run longer.
_STALE_CREDENTIAL_MINUTES = 120
_MIN_SECRET_LENGTH = 6

_AUTH_FAILURE = re.compile(
    r"Authentication failed|could not read (Username|Password)|terminal prompts disabled"
    r"|returned error: 40[13]\b|HTTP 40[13]\b|Permission denied \(publickey"
    r"|Invalid username or (password|token)|unable to read askpass response",
    re.IGNORECASE,
)
_TRANSIENT_FAILURE = re.compile(
    r"Could not resolve host|Could not resolve proxy|Connection refused|Connection timed out"
    r"|Connection reset|Operation timed out|Failed to connect|Network is unreachable"
    r"|returned error: 5\d\d|HTTP 5\d\d|RPC failed|early EOF|remote end hung up unexpectedly"
    r"|transfer closed|Empty reply from server|unexpected disconnect|SSL_ERROR|gnutls"
    r"|TLS connection was non-properly terminated|Recv failure|Send failure"
    r"|Temporary failure in name resolution",
    re.IGNORECASE,
)
_NOISE = re.compile(r"^(hint:|remote: (Counting|Compressing|Enumerating|Total)|To |From )")
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_MISSING_REMOTE_REF = re.compile(r"couldn't find remote ref (\S+)")
_MAX_REF_LENGTH = 200
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_UNSAFE_IN_HOST = re.compile(r"[\x00-\x20\x7f/@]")


# -- validation -----------------------------------------------------------------------------


def check_branch(name: str, what: str = "branch") -> str:
    """`name` if it is a valid branch name, else InvalidGitInput."""
    try:
        return validate_branch_name(name)
    except InvalidRefName as exc:
        raise InvalidGitInput(f"invalid {what} {_show(name)}: {exc}") from None


def check_tag(name: str) -> str:
    """`name` if `refs/tags/<name>` passes git's check-ref-format rules (and ours: no leading
    '-', which argv would read as an option), else InvalidGitInput."""
    problem = _ref_problem(name)
    if problem is not None:
        raise InvalidGitInput(f"invalid tag name {_show(name)}: {problem}")
    return name


def check_revision(text: str, what: str = "commit") -> str:
    """A commit sha (full or abbreviated), `HEAD`, or a branch/tag name; nothing git would read
    as an option or as revision syntax (`~`, `^`, `..`, `@{`, `:`)."""
    if not text or len(text) > _MAX_REF_LENGTH:
        raise InvalidGitInput(f"invalid {what}: empty or longer than {_MAX_REF_LENGTH} characters")
    if text == "HEAD" or _HEX.fullmatch(text):
        return text
    if _ref_problem(text) is not None:
        raise InvalidGitInput(f"invalid {what} {_show(text)}: not a branch, tag or commit sha")
    return text


def _ref_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name) > _MAX_REF_LENGTH:
        return f"it is longer than {_MAX_REF_LENGTH} characters"
    if _REF_FORBIDDEN.search(name):
        return "it contains a space, a control character or one of ~ ^ : ? * [ \\"
    if name.startswith("-"):
        return "it must not start with '-'"
    if name == "@" or "@{" in name:
        return "it must not be '@' or contain '@{'"
    if ".." in name:
        return "it must not contain '..'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it must not start or end with '/' or contain '//'"
    if name.endswith("."):
        return "it must not end with '.'"
    for component in name.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            return "no part of it may start with '.' or end with '.lock'"
    return None


def _show(text: str) -> str:
    return repr(text[:100])


def credential_line(url: str, credentials: GitCredentials | None) -> str | None:
    """The `git credential-store` line for `url`'s origin; None where no token applies."""
    if credentials is None:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host or _UNSAFE_IN_HOST.search(host):
        return None
    user = quote(credentials.username, safe="")
    token = quote(credentials.password, safe="")
    return f"{parts.scheme}://{user}:{token}@{host}"


# -- the repository -------------------------------------------------------------------------


class SandboxRepo:
    """The checkout at `workdir` in one sandbox; every command goes through `provider.exec`.

    `remote_url`, when given, is the trusted URL of origin: credentials are only ever built for
    its host, and a network command refuses to run when the checkout's origin (which the agent
    can change) points elsewhere. Without it, origin's URL is read from the checkout.
    """

    def __init__(
        self,
        provider: SandboxProvider,
        sandbox_id: str,
        *,
        workdir: str,
        home: str,
        credentials: GitCredentials | None = None,
        remote_url: str | None = None,
    ) -> None:
        self.provider = provider
        self.sandbox_id = sandbox_id
        self.workdir = workdir.rstrip("/") or "/"
        self.home = home.rstrip("/") or "/"
        self.remote_url = remote_url
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"SandboxRepo(sandbox_id={self.sandbox_id!r}, workdir={self.workdir!r})"

    @property
    def scratch_dir(self) -> str:
        """A directory of ours under the home (credential files, temporary worktrees)."""
        return f"{self.home}/{CREDENTIALS_DIR}"

    # -- running ----------------------------------------------------------------------------

    async def run(
        self, argv: list[str], *, cwd: str | None = None, timeout: float = 60.0
    ) -> ExecResult:
        """A non-git helper command (mkdir, rm, ...), with the same environment as git."""
        result = await self.provider.exec(
            self.sandbox_id,
            argv,
            cwd=cwd or self.workdir,
            env=dict(_BASE_ENV),
            timeout=timeout,
        )
        return self._scrubbed(result)

    async def git(
        self,
        *args: str,
        timeout: float = 120.0,
        network: bool = False,
        check: bool = True,
        env: dict[str, str] | None = None,
        remote_url: str | None = None,
    ) -> ExecResult:
        """`git <args>` in the workdir. `network=True` for commands that talk to origin (or to
        `remote_url`): only those get credentials. `check` raises the mapped GitOpError."""
        full_env = {**_BASE_ENV, **(env or {})}
        if network:
            result = await self._networked(list(args), full_env, timeout, remote_url)
        else:
            result = await self.provider.exec(
                self.sandbox_id,
                ["git", *args],
                cwd=self.workdir,
                env=full_env,
                timeout=timeout,
            )
        result = self._scrubbed(result)
        if check and (result.exit_code != 0 or result.timed_out):
            raise self.error_for(result, args, timeout=timeout)
        return result

    async def read(self, *args: str, check: bool = True, timeout: float = 120.0) -> ExecResult:
        """A read-only git command: never takes optional locks (the agent may be using git)."""
        return await self.git("--no-optional-locks", *args, check=check, timeout=timeout)

    def error_for(
        self, result: ExecResult, args: tuple[str, ...] | list[str], *, timeout: float | None = None
    ) -> GitOpError:
        """The exception for a failed git command (its output already scrubbed)."""
        what = _subcommand(args)
        if result.timed_out:
            limit = f" after {timeout:.0f} s" if timeout is not None else ""
            return TransientGitError(f"git {what} timed out{limit}; try again")
        stderr = self._scrub(result.stderr)
        detail = last_error_line(stderr) or f"exit code {result.exit_code}"
        if _AUTH_FAILURE.search(stderr):
            return GitAuthError(
                "authentication failed — store a GitHub token with access to this repository "
                f"(or check that the stored one is still valid); git said: {detail}"
            )
        if _TRANSIENT_FAILURE.search(stderr):
            return TransientGitError(f"git {what} failed, probably temporarily: {detail}")
        return GitOpError(f"git {what} failed: {detail}")

    # -- small queries ----------------------------------------------------------------------

    async def resolve_commit(self, rev: str) -> str | None:
        """The full sha of the commit `rev` names, or None."""
        result = await self.read(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
        )
        sha = result.stdout.strip()
        return sha if result.exit_code == 0 and _FULL_SHA.fullmatch(sha) else None

    async def head(self) -> str:
        sha = await self.resolve_commit("HEAD")
        if sha is None:
            raise GitOpError("the checkout has no commit checked out (HEAD does not resolve)")
        return sha

    async def current_branch(self) -> str | None:
        result = await self.read("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        name = result.stdout.strip()
        return name if result.exit_code == 0 and name else None

    async def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        args = ("merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant)
        result = await self.read(*args, check=False)
        if result.exit_code in (0, 1):
            return result.exit_code == 0
        raise self.error_for(result, args)

    async def git_path(self, name: str) -> str:
        """Absolute path of `name` inside the git dir (MERGE_HEAD, rebase-merge, ...)."""
        path = (await self.read("rev-parse", "--git-path", name)).stdout.strip()
        return path if path.startswith("/") else f"{self.workdir}/{path}"

    async def fetch_branch(self, branch: str, *, timeout: float = 300.0) -> str | None:
        """Update `origin/<branch>` from the remote; its sha, or None (and the stale
        remote-tracking ref dropped) when the remote has no such branch."""
        refspec = f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
        args = ("fetch", "--no-tags", "origin", refspec)
        result = await self.git(*args, network=True, check=False, timeout=timeout)
        if result.exit_code == 0:
            return await self.resolve_commit(f"refs/remotes/origin/{branch}")
        if not result.timed_out and _MISSING_REMOTE_REF.search(result.stderr):
            await self.git("update-ref", "-d", f"refs/remotes/origin/{branch}", check=False)
            return None
        raise self.error_for(result, args, timeout=timeout)

    async def fetch_branches(self, *branches: str, timeout: float = 300.0) -> None:
        """Update `origin/<b>` for each branch; InvalidGitInput names one the remote lacks."""
        refspecs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in branches]
        args = ("fetch", "--no-tags", "origin", *refspecs)
        result = await self.git(*args, network=True, check=False, timeout=timeout)
        if result.exit_code == 0:
            return
        missing = _MISSING_REMOTE_REF.search(result.stderr) if not result.timed_out else None
        if missing is not None:
            name = missing.group(1).removeprefix("refs/heads/")
            raise InvalidGitInput(f"branch {_show(name)} does not exist on the remote")
        raise self.error_for(result, args, timeout=timeout)

    async def remote_refs(self, *refs: str, timeout: float = 120.0) -> dict[str, str]:
        """{full ref name: sha} for those of `refs` the remote has (peeled tags as `<ref>^{}`)."""
        # A pattern matches a peeled entry only when it names the `^{}` itself.
        peeled = [f"{ref}^{{}}" for ref in refs if ref.startswith("refs/tags/")]
        patterns = [*refs, *peeled]
        result = await self.git("ls-remote", "origin", *patterns, network=True, timeout=timeout)
        wanted = set(patterns)
        found: dict[str, str] = {}
        for line in result.stdout.splitlines():
            sha, _, name = line.partition("\t")
            if name in wanted:
                found[name] = sha.strip()
        return found

    # -- internals --------------------------------------------------------------------------

    async def _networked(
        self, args: list[str], env: dict[str, str], timeout: float, remote_url: str | None
    ) -> ExecResult:
        line: str | None = None
        if self._credentials is not None:
            url = remote_url or self.remote_url
            if url is None:
                url = await self._origin_url()
            elif remote_url is None:
                await self._check_origin(url)
            line = credential_line(url, self._credentials)
        helpers = [""]  # an empty value drops every helper configured before it
        path: str | None = None
        if line is not None:
            path = f"{self.scratch_dir}/{_CREDENTIAL_PREFIX}{secrets.token_hex(16)}"
            await self.provider.write_file(self.sandbox_id, path, f"{line}\n".encode(), mode=0o600)
            helpers.append(f"store --file={shlex.quote(path)}")
        env["GIT_CONFIG_COUNT"] = str(len(helpers))
        for index, value in enumerate(helpers):
            env[f"GIT_CONFIG_KEY_{index}"] = "credential.helper"
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        argv = ["git", "-c", "core.hooksPath=/dev/null", *args]
        try:
            return await self.provider.exec(
                self.sandbox_id, argv, cwd=self.workdir, env=env, timeout=timeout
            )
        finally:
            if path is not None:
                # Shielded: a second cancellation must not leave the token on disk.
                await asyncio.shield(asyncio.ensure_future(self._remove_credentials(path)))

    async def _origin_url(self) -> str:
        result = await self.read("remote", "get-url", "origin", check=False)
        url = result.stdout.strip()
        if result.exit_code != 0 or not url:
            raise GitOpError("the checkout has no remote named origin")
        return url

    async def _check_origin(self, expected: str) -> None:
        for extra in ((), ("--push",)):
            result = await self.read("remote", "get-url", "--all", *extra, "origin", check=False)
            urls = [u for u in result.stdout.splitlines() if u.strip()]
            if result.exit_code != 0 or any(u.strip() != expected for u in urls) or not urls:
                shown = ", ".join(urls) or "nothing"
                raise GitOpError(
                    f"the remote 'origin' of this checkout points to {shown}, not to "
                    f"{expected}; not sending credentials there"
                )

    async def _remove_credentials(self, path: str) -> None:
        directory, _, name = path.rpartition("/")
        argv = [
            "find", directory, "-maxdepth", "1",
            "(", "-name", name, "-o", "-name", f"{name}.lock",
            "-o", "(", "-name", f"{_CREDENTIAL_PREFIX}*",
            "-mmin", f"+{_STALE_CREDENTIAL_MINUTES}", ")", ")",
            "-delete",
        ]  # fmt: skip
        try:
            result = await self.provider.exec(
                self.sandbox_id, argv, cwd=self.home, env=dict(_BASE_ENV), timeout=30.0
            )
            if result.exit_code != 0:
                logger.warning(
                    "could not remove a git credential file in sandbox %s: %s",
                    self.sandbox_id,
                    result.stderr.strip()[:500],
                )
        except Exception:
            logger.warning(
                "could not remove a git credential file in sandbox %s",
                self.sandbox_id,
                exc_info=True,
            )

    def _scrub(self, text: str) -> str:
        creds = self._credentials
        if creds is None or len(creds.password) < _MIN_SECRET_LENGTH:
            return text
        for secret in {creds.password, quote(creds.password, safe="")}:
            text = text.replace(secret, "***")
        return text

    def _scrubbed(self, result: ExecResult) -> ExecResult:
        if self._credentials is None:
            return result
        return replace(result, stdout=self._scrub(result.stdout), stderr=self._scrub(result.stderr))


def last_error_line(stderr: str) -> str:
    """The most telling line of git's stderr: the last fatal/error line, else the last line."""
    lines = [line.strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not _NOISE.match(line)]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    chosen = (errors or lines or [""])[-1]
    return scrub_urls(chosen)[:500]


def _subcommand(args: tuple[str, ...] | list[str]) -> str:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-c", "-C"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "command"
