"""dubgraph over HTTP: a FastAPI ingress and the five model deployments, composed by handles, in one Serve app.

    serve run serve_app:app                    # defaults: offline profile, jobs under ./dubgraph-jobs
    serve run serve_config.yaml                # replicas, resources, batching and args from a config

The ingress runs on CPU and owns the job store and runner (``graph.jobs.runner``); it drives ``graph.run.pipeline`` through
the deployment handles (``actors.serving``). Model deployments take the accelerators (see serve_config.gpu.yaml).
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures in the replica, where string
# annotations naming unused globals (Request) would not resolve.
import asyncio
import json
import os
import time

import ray
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.serve import Application

from actors.serving import (
    Diarizer,
    ModelSet,
    Separator,
    Synthesizer,
    Transcriber,
    Translator,
    model_classes,
    profile_with,
    serve_stages,
)
from graph.edits import parse_revision
from graph.errors import BadInput, DubError, JobNotFound, RequestTooLarge
from graph.jobs import bodies
from graph.jobs import http as api
from graph.jobs.page import install_page
from graph.jobs.runner import JobRunner, Limits
from graph.jobs.store import JobStore
from graph.languages import LANGUAGES, language
from graph.media.library import VoiceLibrary
from graph.media.outputs import MANIFEST
from graph.options import TranslateOptions

READY_CACHE_S = 2.0
MODEL_DEPLOYMENTS = (Transcriber, Diarizer, Translator, Synthesizer, Separator)  # the order DubIngress takes them in


class ModelArgs(BaseModel):
    """The model deployments' arguments (``args:`` of a ``serve_app:build_models`` application)."""

    model_config = ConfigDict(extra="forbid")
    profile: str = Field("offline", description="model profile: offline or full")
    actors: dict[str, str] = Field(default_factory=dict, description="role -> 'module:Class' instead of the profile's")

    @model_validator(mode="after")
    def _known_profile(self) -> "ModelArgs":
        """An unknown profile or role fails when the app is built, not in a replica's restart loop."""
        try:
            profile_with(self.profile, self.actors)
        except DubError as exc:
            raise ValueError(str(exc)) from None
        return self


class DubAppArgs(ModelArgs):
    """Application arguments (``args:`` in a Serve config); deployment resources live in the config's deployments."""

    job_dir: str = Field("dubgraph-jobs", description="job store (SQLite + a directory per job); keep it")
    api_key: str | None = Field(None, description="required in X-API-Key when set (prefer api_key_env)")
    api_key_env: str = Field("DUBGRAPH_API_KEY", description="environment variable holding the API key, if set")
    allow_anonymous: bool = Field(False, description="serve without an API key on a non-loopback address")
    max_upload_mb: float = Field(512, gt=0)
    max_body_kb: float = Field(4096, gt=0, description="largest JSON or form body (everything but an upload)")
    body_timeout_s: float = Field(30, gt=0, description="a request body that sends nothing this long: 408")
    body_min_kbps: float = Field(8, ge=0, description="average KB/s a body must keep up after body_timeout_s")
    min_free_mb: float = Field(256, ge=0, description="uploads are refused (507) below this much free disk")
    retention_days: float | None = Field(7, gt=0, description="finished jobs are deleted this long after; null: kept")
    max_duration_s: float = Field(3 * 3600, gt=0, description="longest input accepted")
    max_running_jobs: int = Field(2, ge=1, description="jobs dubbed at the same time; the rest wait in the queue")
    max_queued_jobs: int = Field(64, ge=0, description="beyond this, POST /v1/dubs answers 503 with Retry-After")
    retry_after_s: int = Field(30, ge=1)
    input_roots: list[str] = Field(default_factory=list, description="server directories a request may name by path")
    synth_parallelism: int = Field(8, ge=1, description="lines of one job and language synthesized at once")
    translate_max_texts: int = Field(256, ge=1, description="texts per POST /v1/translate")
    translate_max_chars: int = Field(2000, ge=1, description="characters per text in POST /v1/translate")
    models_app: str | None = Field(None, description="use the model deployments of this running application "
                                   "(serve_app:build_models, same profile and actors) instead of deploying them")
    voice_dir: str | None = Field(None, description="voice library; default $DUBGRAPH_VOICES, else <job_dir>/voices")
    max_voice_mb: float = Field(20, gt=0, description="largest voice clip accepted (/v1/voices, voice.* parts)")
    max_voices: int = Field(1000, ge=1, description="voices the library may hold")

    def key(self) -> str | None:
        return self.api_key or os.environ.get(self.api_key_env) or None


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress()
class DubIngress:
    """The HTTP API; dub jobs run in this replica's event loop, model work in the model deployments."""

    async def __init__(self, args: DubAppArgs, *models):
        """``models``: handles to the five model deployments, bound by ``build_app``; with ``args.models_app``,
        those of that application, found by name."""
        self.args = args
        self.profile = profile_with(args.profile, args.actors)
        if args.models_app:
            await _check_models(args.models_app, self.profile)
            models = tuple(serve.get_deployment_handle(d.name, args.models_app) for d in MODEL_DEPLOYMENTS)
        transcriber, diarizer, translator, synthesizer, separator = models
        self.translator = translator
        self.api_key = args.key()
        api.require_key_when_exposed(await asyncio.to_thread(_http_host), self.api_key, args.allow_anonymous)
        limits = Limits(args.max_running_jobs, args.max_queued_jobs, args.retry_after_s, args.max_duration_s,
                        args.retention_days, int(args.min_free_mb * 2**20))
        stages = serve_stages(transcriber, diarizer, translator, synthesizer, args.synth_parallelism, separator)
        self.library = VoiceLibrary(api.library_dir(args.voice_dir, args.job_dir))
        self.runner = JobRunner(JobStore(args.job_dir), stages, self.profile, limits, self.library.root)
        await self.runner.start()
        self._ready: tuple[float, dict[str, str]] = (0.0, {})

    async def __del__(self):
        await self.runner.close()

    def __serve_build_asgi_app__(self) -> FastAPI:
        open_docs = {} if self.api_key is None else {"docs_url": None, "redoc_url": None, "openapi_url": None}
        app = FastAPI(title="dubgraph", version="0.1.0", description="Multi-speaker speech-to-speech dubbing jobs.",
                      **open_docs)  # fmt: skip
        api.install_error_handlers(app)
        args = self.args
        bodies.bound_bodies(app, bodies.BodyLimits(int(args.max_upload_mb * 2**20), int(args.max_body_kb * 2**10),
                                                   args.body_timeout_s, args.body_min_kbps * 2**10))  # fmt: skip
        guard = [Depends(api.api_key_guard(self.api_key))]
        route = app.add_api_route
        if self.api_key is not None:  # the schema only for key holders; no browsable docs (they cannot send it)
            route("/openapi.json", lambda: JSONResponse(app.openapi()), methods=["GET"], dependencies=guard,
                  include_in_schema=False)  # fmt: skip
        route("/v1/dubs", self.create_dub, methods=["POST"], status_code=202, dependencies=guard,
              openapi_extra=_DUB_BODY, summary="Start a dub job")
        route("/v1/dubs", self.list_dubs, methods=["GET"], dependencies=guard, summary="Recent jobs, newest first")
        route("/v1/dubs/{job_id}", self.get_dub, methods=["GET"], dependencies=guard, summary="Job status")
        route("/v1/dubs/{job_id}", self.delete_dub, methods=["DELETE"], dependencies=guard,
              summary="Cancel a job and delete its files")
        route("/v1/dubs/{job_id}/lines", self.get_lines, methods=["GET"], dependencies=guard,
              summary="A done job's lines in one language (lang: the first target by default)")
        route("/v1/dubs/{job_id}/lines/{line_id}", self.patch_line, methods=["PATCH"], dependencies=guard,
              openapi_extra=_PATCH_BODY, summary="Edit a line (If-Match: its revision); regenerated at the next render")
        route("/v1/dubs/{job_id}/lines/{line_id}/audio", self.get_line_audio, methods=["GET"], dependencies=guard,
              summary="A line's placed clip (WAV) in one language")
        route("/v1/dubs/{job_id}/render", self.render_dub, methods=["POST"], status_code=202, dependencies=guard,
              summary="Regenerate what the edits made stale (If-Match: the job's revision)")
        route("/v1/dubs/{job_id}/{name}", self.get_artifact, methods=["GET"], dependencies=guard,
              summary="A finished job's <lang>.wav|flac|srt|vtt|mp4|mov|mkv|webm, dubbed.<video format>, "
                      "original.flac or manifest.json (Range supported)")
        route("/v1/voices", self.list_voices, methods=["GET"], dependencies=guard, summary="The voice library")
        route("/v1/voices", self.create_voice, methods=["POST"], status_code=201, dependencies=guard,
              openapi_extra=_VOICE_BODY, summary="Add a voice (name + a 3-30 s clip of one person); 409 if it exists")
        route("/v1/voices/{name}", self.get_voice, methods=["GET"], dependencies=guard, summary="One voice")
        route("/v1/voices/{name}", self.replace_voice, methods=["PUT"], dependencies=guard, openapi_extra=_VOICE_BODY,
              summary="Add or replace a voice (an 'audio' clip)")
        route("/v1/voices/{name}", self.delete_voice, methods=["DELETE"], dependencies=guard, summary="Remove a voice")
        route("/v1/translate", self.translate, methods=["POST"], dependencies=guard,
              response_model=api.TranslateResponse, summary="Translate texts (never queued behind jobs)")
        route("/v1/info", self.info, methods=["GET"], dependencies=guard,
              summary="What this server dubs: profile, languages, limits")
        route("/healthz", self.healthz, methods=["GET"], summary="The process is up")
        route("/readyz", self.readyz, methods=["GET"], summary="Every deployment is up, models loaded")
        install_page(app)
        return app

    async def create_dub(self, request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        self.runner.check_space(int(declared) if declared.isdigit() else 0)
        async with api.dub_request(request, int(self.args.max_voice_mb * 2**20)) as (fields, upload, voices):
            options = api.dub_options(fields, self.profile)
            saver = api.job_saver(fields, upload, self.args.input_roots, options.targets)
            record = await self.runner.submit(options, saver, api.voice_saver(voices))
        location = f"{request.scope.get('root_path', '')}/v1/dubs/{record.id}"
        return JSONResponse(self._status(request, record.id), 202, {"Location": location})

    async def list_dubs(self, limit: int = Query(50, ge=1, le=500)) -> dict:
        return {"jobs": self.runner.recent(limit)}

    async def info(self) -> dict:
        args, profile = self.args, self.profile
        return {
            "profile": profile.name,
            "sources": [{"code": c, "name": LANGUAGES[c].name} for c in profile.sources],
            "targets": [{"code": c, "name": LANGUAGES[c].name} for c in profile.targets],
            "max_upload_mb": args.max_upload_mb,
            "max_duration_s": args.max_duration_s,
        }

    async def get_dub(self, request: Request, job_id: str) -> dict:
        return self._status(request, job_id)

    async def delete_dub(self, job_id: str) -> dict:
        if not await self.runner.delete(job_id):
            raise JobNotFound(f"no job {job_id!r} (finished jobs stay until deleted; deleted ones are gone)")
        return {"id": job_id, "deleted": True}

    async def get_lines(self, job_id: str, lang: str | None = None) -> dict:
        return await asyncio.to_thread(self.runner.editor.lines, job_id, lang)

    async def patch_line(self, request: Request, job_id: str, line_id: str) -> JSONResponse:
        body = await api.json_object(request)
        line = await self.runner.editor.edit(job_id, line_id, body, parse_revision(request.headers.get("if-match")))
        return JSONResponse(line, headers={"ETag": f'"{line["revision"]}"'})

    async def get_line_audio(self, job_id: str, line_id: str, lang: str | None = None) -> Response:
        data = await asyncio.to_thread(self.runner.editor.line_audio, job_id, line_id, lang)
        return Response(data, media_type="audio/wav")

    async def render_dub(self, request: Request, job_id: str) -> JSONResponse:
        queued = await self.runner.editor.request_render(job_id, parse_revision(request.headers.get("if-match")))
        return JSONResponse(self._status(request, job_id), 202 if queued else 200)

    async def get_artifact(self, job_id: str, name: str) -> FileResponse:
        record = self.runner.store.get(job_id)
        if record is None or record.status not in ("done", "rendering"):
            state = "unknown" if record is None else record.status
            raise JobNotFound(f"job {job_id!r} is {state}: its files appear when its status is done")
        path, media_type = api.artifact(self.runner.store.out_dir(job_id), name)
        return FileResponse(path, media_type=media_type, filename=name)

    async def list_voices(self) -> dict:
        return {"voices": [v.to_json() for v in await asyncio.to_thread(self.library.voices)]}

    async def create_voice(self, request: Request) -> JSONResponse:
        async with api.voice_request(request, int(self.args.max_voice_mb * 2**20)) as (fields, upload):
            voice = await asyncio.to_thread(api.add_voice, self.library, fields.get("name"), upload, False,
                                            self.args.max_voices)
        return JSONResponse(voice, 201, {"Location": f"{request.scope.get('root_path', '')}/v1/voices/{voice['name']}"})

    async def get_voice(self, name: str) -> dict:
        return (await asyncio.to_thread(self.library.get, name)).to_json()

    async def replace_voice(self, request: Request, name: str) -> dict:
        async with api.voice_request(request, int(self.args.max_voice_mb * 2**20)) as (fields, upload):
            if fields.get("name", name) != name:
                raise BadInput(f"the name field ({fields['name']!r}) differs from the voice in the path ({name!r})")
            return await asyncio.to_thread(api.add_voice, self.library, name, upload, True, self.args.max_voices)

    async def delete_voice(self, name: str) -> dict:
        await asyncio.to_thread(self.library.remove, name)
        return {"name": name, "deleted": True}

    async def translate(self, body: api.TranslateRequest) -> api.TranslateResponse:
        most, longest = self.args.translate_max_texts, self.args.translate_max_chars
        if len(body.texts) > most or max(map(len, body.texts)) > longest:
            raise RequestTooLarge(f"at most {most} texts of {longest} characters each")
        source = language(body.source, self.profile.sources, "source").code
        target = language(body.target, self.profile.targets).code
        options = TranslateOptions(n_best=body.n_best, num_beams=max(body.n_best, TranslateOptions().num_beams))
        candidates = await self.translator.translate_text.remote(body.texts, source, target, options)
        return api.TranslateResponse(source=source, target=target, translations=[c[0] for c in candidates],
                                     candidates=[list(c) for c in candidates])  # fmt: skip

    async def healthz(self) -> dict:
        return {"status": "ok"}

    async def readyz(self) -> JSONResponse:
        deployments = await self._deployments()
        ready = bool(deployments) and all(state == "HEALTHY" for state in deployments.values())
        headers = None if ready else {"Retry-After": "5"}
        return JSONResponse({"ready": ready, "deployments": deployments}, 200 if ready else 503, headers)

    async def _deployments(self) -> dict[str, str]:
        """Deployment states from the Serve controller (cached briefly: probes may be frequent)."""
        checked_s, states = self._ready
        if time.monotonic() - checked_s > READY_CACHE_S:
            apps = (serve.get_replica_context().app_name, self.args.models_app)
            try:
                status = await asyncio.to_thread(serve.status)
            except Exception:  # the controller is restarting: not ready, ask again later
                return {}
            found = [status.applications.get(app) for app in apps if app]
            states = {} if None in found else {name: d.status.value for app in found
                                               for name, d in app.deployments.items()}  # fmt: skip
            self._ready = (time.monotonic(), states)
        return states

    def _status(self, request: Request, job_id: str) -> dict:
        status = self.runner.status(job_id)
        if status is None:
            raise JobNotFound(f"no job {job_id!r}")
        if status["status"] in ("done", "rendering"):  # a rendering job serves its last revision meanwhile
            out_dir = self.runner.store.out_dir(job_id)
            manifest = json.loads((out_dir / MANIFEST).read_text())
            status["links"] = api.links(request.scope.get("root_path", ""), job_id, manifest, out_dir)
        return status


def _form_body(required: list[str], properties: dict, **content) -> dict:
    """An OpenAPI request body of a multipart form (the routes parse their requests themselves)."""
    form = {"schema": {"type": "object", "required": required, "properties": properties}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": form, **content}}}


_DUB_BODY = _form_body(
    ["targets"],
    {
        "audio": {"type": "string", "format": "binary", "description": "the recording (any format)"},
        "path": {"type": "string", "description": "instead of audio: a file under input_roots"},
        "targets": {"type": "string", "description": "comma-separated target languages, e.g. pt-br"},
        "speakers": {"type": "integer", "description": "exact number of speakers, when known"},
        "min_speakers": {"type": "integer"},
        "max_speakers": {"type": "integer"},
        "source_language": {"type": "string"},
        "profile": {"type": "string", "description": "must be the profile this server runs"},
        "options": {"type": "string", "description": "JSON object of further DubOptions fields "
                    "(voices: {library: {SPEAKER: name}, match, match_threshold})"},
        "glossary": {"type": "string", "description": "JSON object: terms (language -> {source: target}), keep "
                     "(list), pronounce (language -> {word: respelling})"},
        "voice.SPEAKER_00": {"type": "string", "format": "binary",
                             "description": "a reference clip for that speaker (any voice.* name)"},
        "transcript": {"type": "string", "format": "binary",
                       "description": "SRT/WebVTT of what is said, instead of speech recognition"},
        "translation.pt-br": {"type": "string", "format": "binary",
                              "description": "per target (translation.<lang>): its translation of the transcript, "
                                             "cue for cue, instead of machine translation"},
    },
    **{"application/json": {"schema": {"type": "object", "description": "the same fields; path instead of audio"}}},
)
_VOICE_BODY = _form_body(
    ["audio"],
    {
        "name": {"type": "string", "description": "the voice's name (POST): letters, digits, _ - ."},
        "audio": {"type": "string", "format": "binary", "description": "3-30 s of the person talking alone, 16 kHz+"},
    },
)


def _http_host() -> str | None:
    """The address Serve's HTTP proxies listen on, when a Serve instance is running here."""
    from ray.serve.context import _get_global_client

    try:
        client = _get_global_client(raise_if_no_controller_running=False)
    except Exception:  # noqa: BLE001 - no Ray or no Serve yet: not known
        return None
    return None if client is None else client.http_config.host


_PATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "properties": {
            "lang": {"type": "string", "description": "the language of text (default: the job's first target)"},
            "text": {"type": "string", "description": "what the line says in lang (instead of machine translation)"},
            "source_text": {"type": "string", "description": "the source line; re-translated at the next render"},
            "speaker": {"type": "string", "description": "one of the job's speakers: re-voiced in that voice"},
            "start_s": {"type": "number"}, "end_s": {"type": "number", "description": "the slot in the source"},
            "locked": {"type": "boolean", "description": "never regenerated while locked"},
        }}}},
    }
}


def build_app(args: DubAppArgs) -> Application:
    """The application: the ingress bound to the five model deployments (one replica set each), or, with
    ``args.models_app``, the ingress alone, using the model deployments of that application.

    Where Serve already runs (a config deploy), an exposed address without an API key fails here, at once; the
    ingress checks again when it starts (``serve run serve_app:app`` imports this before Serve starts)."""
    host = _http_host() if ray.is_initialized() else None
    if host is not None:
        api.require_key_when_exposed(host, args.key(), args.allow_anonymous)
    return DubIngress.bind(args) if args.models_app else DubIngress.bind(args, *_bound_models(args))


def build_models(args: ModelArgs) -> Application:
    """The five model deployments alone, as an application of their own (no route) that ingress applications
    name in ``models_app``. Deploying an ingress then starts no model: a change of its args (keys, limits, job
    store) restarts the ingress in seconds while the models stay loaded, and several ingresses can share them."""
    return ModelSet.bind(args.profile, args.actors, *_bound_models(args))


async def _check_models(app: str, profile) -> None:
    """The models application serves this profile's models (its languages and names are the ingress's)."""
    try:
        served = await serve.get_deployment_handle(ModelSet.name, app).models.remote()
    except Exception as exc:  # noqa: BLE001 - Serve says "no such application/deployment" in several ways
        raise DubError(f"models_app {app!r}: no model application of that name runs here (deploy "
                       f"serve_app:build_models as {app!r} first): {type(exc).__name__}: {exc}") from None
    wanted = model_classes(profile)
    if served != wanted:
        raise DubError(f"models_app {app!r} serves {served}, not the {profile.name} profile's models {wanted}: "
                       "give both applications the same profile and actors")


def _bound_models(args: ModelArgs) -> list[Application]:
    models = (args.profile, args.actors)
    return [d.bind(*models) for d in MODEL_DEPLOYMENTS]


app = build_app(DubAppArgs())
