"""A folder as an uncompressed tar, streamed piece by piece: the download of a checkpoint and of
a reward model, over the API and from the pages alike."""

import tarfile
from pathlib import Path

from django.conf import settings
from django.http import Http404, StreamingHttpResponse

from webapp.core.downloads import attachment_response

CHUNK = 1 << 20


def folder_in_checkpoint_root(path: str, missing: str) -> Path:
    """``path`` resolved, only if it is a folder inside the checkpoint root (else 404 saying ``missing``)."""
    root = Path(settings.STEER_CHECKPOINT_DIR).resolve()
    folder = Path(path).resolve()
    if not path or not folder.is_relative_to(root) or not folder.is_dir():
        raise Http404(missing)
    return folder


def tar_chunks(folder: Path, arcroot: str):
    """An uncompressed tar of `folder`, produced piece by piece (constant memory)."""
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            continue  # never follow a link out of the served folder
        info = tarfile.TarInfo(f"{arcroot}/{path.relative_to(folder).as_posix()}")
        stat = path.stat()
        info.mtime, info.mode = int(stat.st_mtime), 0o755 if path.is_dir() else 0o644
        if path.is_dir():
            info.type = tarfile.DIRTYPE
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            continue
        info.size = stat.st_size
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        written = 0
        with path.open("rb") as handle:
            while written < info.size and (piece := handle.read(min(CHUNK, info.size - written))):
                written += len(piece)
                yield piece
        if written < info.size:  # the file shrank while we read it: keep the archive well-formed
            yield b"\0" * (info.size - written)
        if info.size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def tar_download_response(folder: Path, name: str) -> StreamingHttpResponse:
    """`folder` as the attachment `<name>.tar`, its members under `<name>/`."""
    return attachment_response(tar_chunks(folder, name), filename=f"{name}.tar", content_type="application/x-tar")
