"""A Hugging Face Hub repository (or a mirror of it) as a pull source.

The branch or tag is resolved once to a commit sha, and every file is downloaded at that sha, so
the files come from one commit even if the branch moves meanwhile. Each file is checked against the
checksum the hub publishes in the commit's file listing: the LFS sha256 for large files, the git
blob id for the others, and is never allowed to grow past the size listed there (see
``hub_download``). From the real hub (``https://huggingface.co``) files stored in Xet come through
Xet, sized and checksummed the same way once written (``hub_xet``); from any other endpoint they come
over its plain HTTP routes, never Xet storage, so a mirror sees every byte. The token comes only
from ``HF_TOKEN`` or the hub's stored login, through huggingface-hub itself; crowguard never reads, logs or stores it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crowguard.errors import CrowguardError, IntegrityError, ToolError, UsageError
from crowguard.pull.files import file_entry, git_blob_sha1
from crowguard.pull.hub_download import check_free_space, download_capped, target_path
from crowguard.pull.hub_xet import download_xet, xet_allowed
from crowguard.pull.interface import PullSource
from crowguard.report.model import FileEntry
from crowguard.secrets import scrub

DEFAULT_ENDPOINT = "https://huggingface.co"
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_TOKEN_HINT = "for a private or gated repository, set HF_TOKEN or run `hf auth login`"


class HubSource(PullSource):
    """A model repository on the hub, pinned to one commit."""

    kind = "hub"

    def __init__(self, repo_id: str, *, revision: str | None = None, endpoint: str | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(repo_id)
        self.revision = revision
        self.endpoint = resolve_endpoint(endpoint)
        self.cache_dir = cache_dir
        self.commit: str | None = None
        self._siblings: dict[str, Any] = {}

    def resolve(self) -> str:
        """Ask the hub for the commit the revision points at, with the file listing and checksums."""
        from huggingface_hub import HfApi

        with hub_errors(self.reference, self.revision, self.endpoint):
            info = HfApi(endpoint=self.endpoint).model_info(self.reference, revision=self.revision,
                                                            files_metadata=True)
        sha = info.sha or ""
        if not _COMMIT_SHA.match(sha):
            raise ToolError(f"{self.endpoint} answered without a commit sha for {self.reference}",
                            hint="check that --endpoint points at a Hugging Face Hub or a faithful mirror")
        if self.revision and _COMMIT_SHA.match(self.revision) and self.revision != sha:
            raise IntegrityError(f"asked for commit {self.revision} of {self.reference}, the hub answered {sha}",
                                 hint="the endpoint does not serve the commit asked for; try another endpoint")
        self.commit = sha
        self._siblings = {s.rfilename: s for s in info.siblings or []}
        return sha

    def list_files(self) -> list[str]:
        return list(self._siblings)

    def fetch(self, names: Sequence[str], dest: Path) -> tuple[FileEntry, ...]:
        """Download each file at the pinned commit into ``dest``, capped at and checked against the hub's listing."""
        from huggingface_hub import hf_hub_url

        if self.commit is None:
            raise RuntimeError("resolve() must run before fetch()")
        sizes = {name: self._declared_size(name) for name in names}
        check_free_space(dest, sum(sizes.values()))
        entries = []
        use_xet = xet_allowed(self.endpoint)
        with hub_errors(self.reference, self.revision, self.endpoint):
            for name in names:
                target = target_path(dest, name)
                url = hf_hub_url(self.reference, name, revision=self.commit, endpoint=self.endpoint)
                where = f"{name} from {self.reference}@{self.commit}"
                # Only files the hub lists as LFS can be in Xet; small git files skip the extra request.
                in_xet = use_xet and self._siblings[name].lfs is not None and download_xet(
                    url, target, declared_size=sizes[name], endpoint=self.endpoint, where=where)
                if not in_xet:
                    download_capped(url, target, declared_size=sizes[name], where=where)
                entries.append(self._checked(target, name))
        return tuple(entries)

    def _declared_size(self, name: str) -> int:
        """The size the hub lists for ``name``: the download's cap. A file without one is refused."""
        sibling = self._siblings[name]
        size = sibling.lfs.size if sibling.lfs else sibling.size
        if not isinstance(size, int) or size < 0:
            raise IntegrityError(f"{name} from {self.reference}@{self.commit}: the endpoint lists no size for it, "
                                 "so its download cannot be bounded",
                                 hint="use an endpoint that serves file metadata (sizes, sha256 / blob ids)")
        return size

    def _checked(self, path: Path, name: str) -> FileEntry:
        sibling = self._siblings[name]
        entry = file_entry(path, name)
        where = f"{name} from {self.reference}@{self.commit}"
        hint = "the download, the mirror or the hub's copy is bad or tampered with; pull again or use another mirror"
        expected_size = sibling.lfs.size if sibling.lfs else sibling.size
        if expected_size is not None and entry.size != expected_size:
            raise IntegrityError(f"{where} has {entry.size} bytes, the hub publishes {expected_size}", hint=hint)
        if sibling.lfs:
            if entry.sha256 != sibling.lfs.sha256:
                raise IntegrityError(f"{where} has sha256 {entry.sha256}, the hub publishes {sibling.lfs.sha256}",
                                     hint=hint)
        elif sibling.blob_id:
            actual = git_blob_sha1(path)
            if actual != sibling.blob_id:
                raise IntegrityError(f"{where} has git blob id {actual}, the hub publishes {sibling.blob_id}",
                                     hint=hint)
        else:
            raise IntegrityError(f"{where}: the endpoint publishes no checksum for it, so it cannot be verified",
                                 hint="use an endpoint that serves file metadata (sha256 / blob ids)")
        return entry


def resolve_endpoint(endpoint: str | None) -> str:
    """--endpoint, else HF_ENDPOINT, else the public hub; must be an http(s) URL."""
    value = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"endpoint {public_endpoint(value)!r} is not an http(s) URL",
                         hint="pass --endpoint https://host or set HF_ENDPOINT")
    return value


def public_endpoint(endpoint: str) -> str:
    """The endpoint without any user:password part, fit for reports."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


@contextmanager
def hub_errors(repo_id: str, revision: str | None, endpoint: str) -> Iterator[None]:
    """Turn huggingface-hub's exceptions into crowguard errors; messages are scrubbed of secrets."""
    import httpx2
    from huggingface_hub import errors

    try:
        yield
    except CrowguardError:
        raise
    except errors.HFValidationError as exc:
        raise UsageError(f"{repo_id!r} is not a valid hub repository id: {_first_line(exc)}",
                         hint="use ORG/NAME, or give a local path that exists") from None
    except errors.RevisionNotFoundError:
        raise UsageError(f"revision {revision!r} not found in {repo_id}",
                         hint="check the branch, tag or commit sha (--revision)") from None
    except errors.GatedRepoError:
        raise UsageError(f"{repo_id} is gated and this account has not been granted access",
                         hint=f"accept the model's terms on its hub page; {_TOKEN_HINT}") from None
    except errors.RepositoryNotFoundError:
        raise UsageError(f"repository {repo_id} not found, or not visible without a token",
                         hint=f"check the id; {_TOKEN_HINT}; a local path must exist") from None
    except errors.RemoteEntryNotFoundError as exc:
        raise ToolError(f"the hub listed a file of {repo_id} but did not serve it: {_first_line(exc)}",
                        hint="retry later, or use another endpoint") from None
    except (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError) as exc:
        raise ToolError(f"cannot reach the hub for {repo_id}: {_first_line(exc)}",
                        hint="unset HF_HUB_OFFLINE, check the network, or pull from a mirror with --endpoint") from None
    except httpx2.TransportError as exc:
        raise ToolError(f"cannot reach {public_endpoint(endpoint)}: {_first_line(exc)}",
                        hint="check the network and --endpoint / HF_ENDPOINT, then retry") from None
    except (errors.HfHubHTTPError, errors.FileMetadataError) as exc:
        raise ToolError(f"hub request for {repo_id} failed: {_first_line(exc)}",
                        hint="check the network and --endpoint / HF_ENDPOINT, then retry") from None
    except httpx2.HTTPError as exc:  # too many redirects, a redirect to an unsupported scheme, ...
        raise ToolError(f"hub request for {repo_id} failed: {_first_line(exc)}",
                        hint="--endpoint / HF_ENDPOINT must be a Hugging Face Hub or a faithful mirror") from None
    except OSError as exc:
        if "Consistency check failed" in str(exc):
            raise IntegrityError(f"a download from {repo_id} has the wrong size: {_first_line(exc)}",
                                 hint="the download or the mirror is corrupt; pull again") from None
        raise ToolError(f"cannot write the download: {_first_line(exc)}",
                        hint="check free disk space and permissions beside --out") from None


def _first_line(exc: BaseException) -> str:
    """The exception's message on one line (huggingface-hub spreads one over several), scrubbed."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return scrub(text[:300] or type(exc).__name__)
