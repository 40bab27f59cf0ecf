"""The HTTP side of the Serve ingress, minus the routes: request parsing, JSON errors, the API key, artifacts.

Every error leaves as ``{"error": {"status", "type", "message", ...}}`` with the status its ``DubError`` class
names; anything unexpected becomes a 500 with a reference id for the server log, never a traceback.
Request bodies are bounded and timed as they stream in by ``graph.jobs.bodies``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from graph.errors import (
    BadInput,
    DubError,
    InsufficientStorage,
    JobNotFound,
    RequestTooLarge,
    Unauthorized,
    UnsupportedLanguage,
    UnsupportedMediaType,
    user_error,
)
from graph.files import atomic_write, is_disk_full
from graph.jobs.store import TRANSCRIPT, TRANSLATION
from graph.languages import parse_targets
from graph.media.library import LIBRARY_ENV, VoiceLibrary, check_name
from graph.media.original import ORIGINAL
from graph.media.outputs import MANIFEST
from graph.media.voice_clip import read_clip
from graph.options import DubOptions, from_dict

log = logging.getLogger(__name__)

DUB_FIELDS = ("path", "targets", "speakers", "min_speakers", "max_speakers", "source_language", "profile", "options",
              "glossary")
VOICE_PART = "voice."  # a multipart file field "voice.SPEAKER_00": that speaker's reference clip
MAX_VOICE_PARTS = 16
ARTIFACT = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z]{2,4})?|dubbed)\.(?P<fmt>wav|flac|srt|vtt|mp4|mov|mkv|webm)$")
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "srt": "application/x-subrip", "vtt": "text/vtt",
               "mp4": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska", "webm": "video/webm",
               "json": "application/json"}  # fmt: skip
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
UPLOAD_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
COPY_CHUNK = 1 << 20
TRANSLATION_FIELD = re.compile(r"^translation\.[a-z]{2,3}(?:-[a-z]{2,4})?$")  # translation.pt-br: a file field
TRANSCRIPT_SUFFIXES = (".srt", ".vtt")
MAX_TRANSCRIPTS = 9  # a transcript and up to 8 translations


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1, description="lines to translate, each on its own")
    target: str = Field(description="target language code, e.g. pt-br")
    source: str = Field("en", description="source language code")
    n_best: int = Field(1, ge=1, le=8, description="candidates per text (models without n-best give one)")


class TranslateResponse(BaseModel):
    source: str
    target: str
    translations: list[str]  # the best candidate of each text
    candidates: list[list[str]]


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "type": kind, "message": message, **extra}}, status, headers)


def dub_error(error: DubError) -> JSONResponse:
    extra: dict[str, Any] = {}
    headers = None
    if isinstance(error, UnsupportedLanguage):
        extra["supported"] = list(error.supported)
    retry_after_s = getattr(error, "retry_after_s", None)
    if retry_after_s is not None:
        headers = {"Retry-After": str(retry_after_s)}
    return error_response(error.http_status, type(error).__name__, str(error), headers, **extra)


def _unexpected(exc: BaseException) -> JSONResponse:
    error = user_error(exc)
    if error is not None:
        return dub_error(error)
    if is_disk_full(exc):  # e.g. spooling a multipart upload to the temp directory
        return dub_error(InsufficientStorage("the server's disk is full; try again later"))
    reference = secrets.token_hex(6)
    log.error("internal error %s", reference, exc_info=exc)
    return error_response(500, "InternalError", f"internal error; the server log has details (reference {reference})")


class _CatchAll:
    """ASGI middleware: whatever escapes the exception handlers becomes a JSON 500, not a plain-text traceback."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                log.error("error after the response started", exc_info=exc)
                return
            await _unexpected(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    async def on_dub_error(_: Request, exc: DubError) -> JSONResponse:
        return dub_error(user_error(exc) or exc)

    async def on_http(_: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, DubError):  # FastAPI wraps what stopped it reading a body (BodyLimits)
            return dub_error(exc.__cause__)
        status = 422 if exc.status_code == 400 else exc.status_code  # malformed bodies count as bad parameters
        return error_response(status, "HTTPError", str(exc.detail), dict(exc.headers or {}))

    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return error_response(422, "BadInput", "; ".join(problems) or "invalid request", problems=problems)

    app.add_exception_handler(DubError, on_dub_error)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_middleware(_CatchAll)


def require_key_when_exposed(host: str | None, key: str | None, allow_anonymous: bool) -> None:
    """Fail closed: no serving without an API key on an address other machines can reach, unless told to."""
    if key or allow_anonymous or (host is not None and _loopback(host)):
        return
    where = f"on {host}, an address other machines can reach" if host else "on an address this replica cannot tell"
    raise DubError(f"refusing to serve without an API key {where}: set the key (api_key_env, DUBGRAPH_API_KEY by "
                   "default), listen on 127.0.0.1, or set allow_anonymous: true to serve anyone who can connect")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def api_key_guard(expected: str | None) -> Callable:
    """A dependency that admits a request carrying the key in ``X-API-Key`` or ``Authorization: Bearer``."""

    async def check(x_api_key: str | None = Header(None), authorization: str | None = Header(None)) -> None:
        if expected is None:
            return
        given = x_api_key
        if given is None and authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("missing or wrong API key: send it in the X-API-Key header")

    return check


@asynccontextmanager
async def dub_request(
    request: Request, max_voice_bytes: int
) -> AsyncIterator[tuple[dict[str, Any], UploadFile | None, dict[str, UploadFile]]]:
    """The fields of a POST /v1/dubs (a form, with an ``audio`` file when multipart, or JSON), the upload, and the
    voice clips (``voice.SPEAKER`` file parts, speaker -> upload). The body's size is bounded by ``bodies``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        yield _known(await json_object(request)), None, {}
        return
    if content_type not in FORM_TYPES:
        raise UnsupportedMediaType(
            "send multipart/form-data (an 'audio' file), a urlencoded form or JSON, "
            f"not {content_type or 'no content type'!r}"
        )
    form = await request.form(max_files=1 + MAX_VOICE_PARTS + MAX_TRANSCRIPTS, max_fields=len(DUB_FIELDS))
    try:
        fields: dict[str, Any] = {}
        upload = None
        voices: dict[str, UploadFile] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key.startswith(VOICE_PART) and key[len(VOICE_PART):].strip():
                    if (value.size or 0) > max_voice_bytes:
                        raise RequestTooLarge(f"the voice clip {key} is {value.size / 2**20:.1f} MB; this server's "
                                              f"upload limit for a voice clip is {max_voice_bytes / 2**20:g} MB")
                    voices[key[len(VOICE_PART):].strip()] = value
                elif _is_transcript(key):
                    fields[key] = value
                elif key != "audio":
                    raise BadInput(f"file fields are 'audio', 'voice.SPEAKER' (a speaker's reference clip), "
                                   f"'transcript' (SRT/WebVTT) and 'translation.<lang>' (one per target), not {key!r}")
                else:
                    upload = value
            else:
                fields[key] = value
        yield _known(fields), upload, voices
    finally:
        await form.close()


@asynccontextmanager
async def voice_request(request: Request, max_bytes: int) -> AsyncIterator[tuple[dict[str, str], UploadFile]]:
    """The fields (``name``) and the ``audio`` clip (at most ``max_bytes``) of a POST/PUT /v1/voices (multipart
    only)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data with the clip as an 'audio' file "
                                   "(curl -F name=alice -F audio=@alice.wav)")
    form = await request.form(max_files=1, max_fields=1)
    try:
        fields, upload = {}, None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile) and key == "audio":
                upload = value
            elif not isinstance(value, UploadFile) and key == "name":
                fields[key] = value
            else:
                raise BadInput(f"unknown field {key!r}: a voice is a 'name' and an 'audio' file")
        if upload is None:
            raise BadInput("send the voice's clip as a multipart file field 'audio'")
        if (upload.size or 0) > max_bytes:
            raise RequestTooLarge(f"the voice clip is {upload.size / 2**20:.1f} MB; this server's upload limit for a "
                                  f"voice clip is {max_bytes / 2**20:g} MB")
        yield fields, upload
    finally:
        await form.close()


def _known(fields: dict[str, Any]) -> dict[str, Any]:
    if "audio" in fields:
        raise BadInput("'audio' must be a file part of a multipart form (curl -F audio=@talk.wav); JSON and "
                       "urlencoded bodies name a server-side file in 'path'")  # fmt: skip
    texts = [key for key, value in fields.items() if _is_transcript(key) and not isinstance(value, UploadFile)]
    if texts:
        raise BadInput(f"{texts[0]!r} must be a file part of a multipart form (curl -F {texts[0]}=@talk.srt)")
    unknown = sorted(key for key in set(fields) - set(DUB_FIELDS) if not _is_transcript(key))
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(unknown)}; known: audio, {', '.join(DUB_FIELDS)}")
    return fields


def _int(fields: dict[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be a whole number, got {value!r}") from None


def dub_options(fields: dict[str, Any], profile) -> DubOptions:
    """DubOptions from request fields; ``options`` (JSON) may set any further DubOptions field."""
    extra = _json_object(fields.get("options") or {}, "options", '{"tts": {"seed": 1}}')
    asked = fields.get("profile") or extra.get("profile") or profile.name
    if asked != profile.name:
        raise BadInput(f"profile {asked!r} is not served here; this server runs profile {profile.name!r}")
    if not fields.get("targets") and not extra.get("targets"):
        raise BadInput(f"targets is required (comma-separated); supported: {', '.join(profile.targets)}")
    targets = parse_targets(fields.get("targets") or extra["targets"], profile.targets)
    data = {**extra, "profile": profile.name, "targets": targets}
    diarize = dict(data.get("diarize") or {})
    for name, key in (("speakers", "num_speakers"), ("min_speakers", "min_speakers"), ("max_speakers", "max_speakers")):
        value = _int(fields, name)
        if value is not None:
            diarize[key] = value
    if diarize:
        data["diarize"] = diarize
    if fields.get("source_language"):
        data["asr"] = {**dict(data.get("asr") or {}), "language": fields["source_language"]}
    if fields.get("glossary"):
        data["glossary"] = _json_object(fields["glossary"], "glossary",
                                        '{"terms": {"pt-br": {"meeting": "reunião"}}, "keep": ["Acme"]}')
    return from_dict(DubOptions, data)


def _is_transcript(key: str) -> bool:
    return key == "transcript" or bool(TRANSLATION_FIELD.match(key))


def transcript_saver(fields: dict[str, Any], targets: tuple[str, ...]) -> Callable[[Path], None]:
    """How to put the transcript and translations sent with a job into its directory (``transcript.srt``,
    ``translation.<lang>.vtt``: graph/jobs/runner.py ``sidecars``)."""
    files: dict[str, UploadFile] = {}
    for key, value in fields.items():
        if not _is_transcript(key):
            continue
        suffix = Path(value.filename or "").suffix.lower()
        if suffix not in TRANSCRIPT_SUFFIXES:
            raise BadInput(f"{key} must be an SRT or WebVTT file (.srt or .vtt), not {value.filename!r}")
        if key == "transcript":
            files[f"{TRANSCRIPT}{suffix}"] = value
            continue
        lang = key.split(".", 1)[1].lower()
        if lang not in targets:
            raise BadInput(f"{key}: {lang} is not one of this job's targets ({', '.join(targets)})")
        files[f"{TRANSLATION}.{lang}{suffix}"] = value

    def save(job_dir: Path) -> None:
        for name, upload in files.items():
            _save(upload, job_dir / name)

    return save


def _json_object(value: Any, name: str, example: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadInput(f"{name} must be a JSON object, e.g. {example}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{name} must be a JSON object, e.g. {example}")
    return value


def input_saver(fields: dict[str, Any], upload: UploadFile | None, roots: list[str]) -> Callable[[Path], Path]:
    """How to put the job's input into its directory: copy the upload, or link/copy an allowed server path."""
    path = fields.get("path")
    if upload is not None and path:
        raise BadInput("send either an 'audio' file or a 'path', not both")
    if upload is not None:
        return lambda job_dir: _save(upload, job_dir / _input_name(upload.filename))
    if not path:
        raise BadInput("send the audio as a multipart file field 'audio', or a server-side 'path'")
    source = _allowed(str(path), roots)

    def save_path(job_dir: Path) -> Path:
        dest = job_dir / _input_name(source.name)
        try:
            os.link(source, dest)  # no copy when the job store is on the same filesystem
        except OSError:
            with open(source, "rb") as data:
                atomic_write(dest, lambda out: shutil.copyfileobj(data, out, COPY_CHUNK))
        return dest

    return save_path


def job_saver(fields: dict[str, Any], upload: UploadFile | None, roots: list[str],
              targets: tuple[str, ...]) -> Callable[[Path], Path]:
    """How to put everything a POST /v1/dubs sent into the job's directory: its transcripts, then the input."""
    save_input, save_transcripts = input_saver(fields, upload, roots), transcript_saver(fields, targets)

    def save(job_dir: Path) -> Path:
        save_transcripts(job_dir)
        return save_input(job_dir)

    return save


def voice_saver(voices: dict[str, UploadFile]) -> Callable[[Path], dict[str, Path]] | None:
    """How to put a job's voice clips into its voices directory (``clip-N<suffix>``); None when it has none."""
    if not voices:
        return None

    def save(directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        return {speaker: _save(upload, directory / f"clip-{i}{_suffix(upload.filename)}")
                for i, (speaker, upload) in enumerate(voices.items())}

    return save


async def json_object(request: Request) -> dict[str, Any]:
    """A small JSON object body (a PATCH of one line; its size is bounded by ``bodies``)."""
    try:
        value = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadInput("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadInput("the JSON body must be an object")
    return value


def _save(upload: UploadFile, dest: Path) -> Path:
    """The upload's bytes in ``dest`` (atomically, on disk) before the job is accepted."""
    upload.file.seek(0)
    return atomic_write(dest, lambda out: shutil.copyfileobj(upload.file, out, COPY_CHUNK))


def _input_name(filename: str | None) -> str:
    """The saved input's name: "input" plus the original suffix when it looks like one (decoders go by it)."""
    return "input" + _suffix(filename)


def _suffix(filename: str | None) -> str:
    suffix = Path(filename or "").suffix
    return suffix.lower() if UPLOAD_SUFFIX.match(suffix) else ""


def _allowed(path: str, roots: list[str]) -> Path:
    if not roots:
        raise BadInput("this server does not read server-side paths; upload the audio as the 'audio' field")
    source = Path(path.removeprefix("file://")).expanduser().resolve()
    if not any(source.is_relative_to(Path(root).expanduser().resolve()) for root in roots):
        raise BadInput(f"{path} is not under a directory this server may read (its input_roots)")
    if not source.is_file():
        raise BadInput(f"{path} is not a file on the server")
    return source


def library_dir(voice_dir: str | None, job_dir: str) -> Path:
    """The server's voice library: ``voice_dir``, else ``$DUBGRAPH_VOICES``, else ``<job_dir>/voices`` (beside the
    job store, so one volume and one backup hold both)."""
    return Path(voice_dir or os.environ.get(LIBRARY_ENV) or Path(job_dir) / "voices").expanduser()


def add_voice(library: VoiceLibrary, name: str | None, upload: UploadFile, replace: bool, max_voices: int) -> dict:
    """Check and store an uploaded clip as library voice ``name`` (blocking: run it in a thread)."""
    if not name:
        raise BadInput("a voice needs a 'name' field")
    check_name(name)
    upload.file.seek(0)
    clip = read_clip(upload.file.read(), upload.filename or "the clip")
    return library.add(name, clip, upload.filename or "clip", replace, max_voices).to_json()


def artifact(out_dir: Path, name: str) -> tuple[Path, str]:
    """Path and media type of one of a finished job's files, by its public name (``pt-br.wav``, ``dubbed.mp4``,
    ``manifest.json``)."""
    match = ARTIFACT.match(name)
    if name not in (MANIFEST, ORIGINAL) and match is None:
        raise JobNotFound(f"no artifact {name!r}: ask for <language>.wav|flac|srt|vtt|mp4|mov|mkv|webm, "
                          f"dubbed.mp4|mov|mkv|webm, {ORIGINAL} or {MANIFEST}")
    path = out_dir / name
    if not path.is_file():
        raise JobNotFound(f"this job has no {name} (the formats and targets it was asked for are in its status)")
    return path, MEDIA_TYPES[Path(name).suffix[1:] if match is None else match["fmt"]]


def links(base: str, job_id: str, manifest: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """URLs of the files a finished job wrote (its manifest lists them): per language and format, the video that
    carries every language, the manifest, and the original's listening copy when the job has one."""
    prefix = f"{base}/v1/dubs/{job_id}"
    video = (manifest.get("video") or {}).get("files") or {}
    found = {
        "manifest": f"{prefix}/{MANIFEST}",
        "languages": {lang: {fmt: f"{prefix}/{name}" for fmt, name in out.get("files", {}).items()}
                      for lang, out in (manifest.get("languages") or {}).items()},
        "video": {fmt: f"{prefix}/{name}" for fmt, name in video.items()},
    }
    if (out_dir / ORIGINAL).is_file():
        found["original"] = f"{prefix}/{ORIGINAL}"
    return found
