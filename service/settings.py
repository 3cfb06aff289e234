"""The one configuration object: every knob, its environment variable and its default.

Variables use the ``COPYCAT_`` prefix and ``__`` between a group and its field, e.g.
``COPYCAT_EMBED__MODEL=sscd`` or ``COPYCAT_MILVUS__URI=http://milvus:19530``. Only ``tasks/``, ``cli/``
and the storage adapters read settings; the pipeline stages in ``workers/`` take plain arguments.

With nothing set, everything runs embedded under one data directory (``COPYCAT_HOME``): SQLite, a
Milvus Lite file, objects in a local folder and tasks executed in-process. Point the URLs at
Postgres, Redis, an S3 server and a Milvus server for production.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stack.stackfile import StackFile
from workers.admission import InputLimits
from workers.decode import DecodeOptions
from workers.errors import ConfigError
from workers.informative import FrameFilter
from workers.localise import TNParams
from workers.signals.registry import settings_groups
from workers.stores.milvus import IndexSpec
from workers.types import QueryParams
from workers.views import ExtraView

_LIMITS = InputLimits()
_INDEX = IndexSpec()
_TN = TNParams()
_DECODE = DecodeOptions()
_QUERY = QueryParams()  # the type of each field's default: what query_params makes a value


class DatabaseSettings(BaseModel):
    url: str = Field("", description="SQLAlchemy URL; empty means SQLite file $COPYCAT_HOME/copycat.db")
    pool_size: int = Field(5, ge=1, description="connections kept per process (ignored by SQLite)")


class BrokerSettings(BaseModel):
    url: str = Field("", description="Celery broker, e.g. redis://127.0.0.1:6379/0; empty runs tasks in-process")
    result_backend: str = Field("", description="Celery result backend; empty uses the broker URL")
    task_time_limit_s: int = Field(3600, ge=10, description="hard limit for one task")
    namespace: str = Field("", description="prefix of every broker key (Redis), so that stacks sharing one Redis"
                           " never take each other's work; `copycat up` picks one per COPYCAT_HOME when empty")
    lease_s: int = Field(90, ge=10, description="a video whose ingest run has not renewed its lease for this"
                         " long (its worker died) is queued again by the next recovery check")
    recover_interval_s: int = Field(30, ge=5, description="period of the recovery check (beat): re-queue videos"
                                    " whose lease expired")
    max_retries: int = Field(5, ge=0, description="retries for transient faults (S3, Milvus, DB down)")
    retry_backoff_max_s: int = Field(300, ge=1, description="cap of the exponential retry delay")
    prefetch_multiplier: int = Field(1, ge=1, description="tasks a worker process reserves ahead")
    reconcile_interval_s: int = Field(300, ge=10, description="period of the bucket reconciliation sweep")


class S3Settings(BaseModel):
    endpoint: str = Field("", description="host:port of an S3 server (MinIO, SeaweedFS); empty stores objects"
                          " in the folder $COPYCAT_HOME/objects")
    access_key: str = Field("", description="S3 access key")
    secret_key: str = Field("", description="S3 secret key")
    secure: bool = Field(False, description="use HTTPS")
    region: str = Field("", description="bucket region, if the server needs one")
    uploads_bucket: str = Field("copycat-uploads", description="videos to index are put here")
    queries_bucket: str = Field("copycat-queries", description="videos to search with are put here")
    matrices_bucket: str = Field("copycat-matrices", description="per-video frame matrices (.npy)")


class MilvusSettings(BaseModel):
    uri: str = Field("", description="Milvus server URI (http://host:19530) or a Milvus Lite file; empty means"
                     " $COPYCAT_HOME/milvus.db")
    token: str = Field("", description="user:password or API token of the Milvus server")
    collection_prefix: str = Field("copycat_frames", description="collection name = prefix + '_' + model")
    index_type: Literal["HNSW", "IVF_FLAT", "IVF_SQ8", "FLAT"] = Field(
        _INDEX.index_type, description="vector index: HNSW, IVF_FLAT, IVF_SQ8 or FLAT (docs/performance.md"
        " has the measured table; fixed when the collection is created)")
    hnsw_m: int = Field(_INDEX.hnsw_m, ge=4, description="HNSW graph degree")
    hnsw_ef_construction: int = Field(_INDEX.hnsw_ef_construction, ge=8, description="HNSW build-time breadth")
    search_ef: int = Field(_INDEX.search_ef, ge=8, description="HNSW search breadth (raised to the search limit"
                           " where that is larger)")
    ivf_nlist: int = Field(_INDEX.ivf_nlist, ge=1, description="IVF_FLAT / IVF_SQ8 clusters (about 4 x"
                           " sqrt(indexed frames); fixed when the collection is created)")
    ivf_nprobe: int = Field(_INDEX.ivf_nprobe, ge=1, description="IVF clusters searched per query vector")
    insert_batch: int = Field(1000, ge=1, description="vectors per insert call (Milvus Lite, in-process: 7200"
                              " vectors took 11.9 s and +267 MiB peak at 1000, 16.3 s and +368 MiB at 5000)")
    search_batch: int = Field(256, ge=1, description="query vectors per search call (fewer when Milvus's 16384"
                              " vectors or 64 MB per request would be exceeded)")
    grouping: Literal["auto", "on", "off"] = Field("auto", description="per-video hits (select.per_video) grouped"
                                                   " by Milvus: auto = servers from 2.4 (numpy on 2.3 and Milvus"
                                                   " Lite), on = wherever offered, off = always numpy")
    merge_cosine: float = Field(0.0, ge=0, le=1, description="index a run of consecutive frames at least this"
                                " similar to its first frame as one vector (static shots, slides); 0 = every"
                                " frame. The localiser still reads every frame")


class DecodeSettings(BaseModel):
    """How videos are decoded: ``workers.decode.DecodeOptions``'s fields with its defaults (the limits are
    ``InputLimits``'s), built by ``Settings.decode_options``."""

    fps: float = Field(_DECODE.fps, gt=0, le=30, description="frames sampled per second of video")
    timeout_s: float = Field(_DECODE.timeout_s, gt=0, description="limit of ffmpeg's time decoding one video"
                             " (seconds; the least any video gets, see TIMEOUT_PER_S)")
    timeout_per_s: float = Field(_DECODE.timeout_per_s, ge=0, description="decode time allowed per second of probed"
                                 " video, when that is more than TIMEOUT_S (a 6-hour upload gets 3 hours); 0 ="
                                 " TIMEOUT_S for all")
    threads: int = Field(_DECODE.threads, ge=0, le=64, description="ffmpeg decoder threads per ffmpeg process; 0"
                         " lets ffmpeg decide (one per core), or 1 for each of a video's parallel range decoders"
                         " (DECODERS)")
    decoders: int = Field(_DECODE.decoders, ge=0, le=64, description="ffmpeg processes decoding one long video at"
                          " once, each a time range of about SEGMENT_S (1.24x faster than one multi-threaded decoder"
                          " on 2 cores, 1.83x with non-reference skipping against a full decode); 0 = this process's"
                          " cores over the videos it decodes at the moment; 1 = one decoder per video")
    segment_s: float = Field(_DECODE.segment_s, gt=0, description="length of one range of a video decoded in"
                             " parallel (DECODERS); shorter videos than twice this are decoded by one process. Ranges"
                             " decoded ahead wait in memory: at most DECODERS ranges of sampled frames")
    keyframe_max_gap_s: float = Field(_DECODE.keyframe_max_gap_s, ge=0, description="decode key frames only for"
                                      " streams whose key frames (in their first 30 s) are at most this far apart; a"
                                      " sample may then come up to that much early; 0 = never (measuring the spacing"
                                      " costs one more ffprobe per video)")
    hwaccel: Literal["auto", "cuda", "none"] = Field(_DECODE.hwaccel, description="auto: decode on an NVIDIA GPU"
                                                     " (NVDEC + scale_cuda) when ffmpeg and the driver offer it;"
                                                     " cuda: the same, logging why not when they do not; none:"
                                                     " never. A failed GPU decode falls back to the CPU")
    chunk_frames: int = Field(_DECODE.chunk_frames, ge=1, description="frames read from ffmpeg at a time (bounds"
                              " memory)")
    max_errors: int = Field(_DECODE.max_errors, ge=0, description="decoder errors tolerated before a video counts"
                            " as corrupt")
    max_duration_s: float = Field(_LIMITS.max_duration_s, gt=0, description="longer videos are refused")
    max_pixels: int = Field(_LIMITS.max_pixels, ge=1, description="videos whose frames have more pixels (width x"
                            " height) are refused; the default is 8K UHD, 7680x4320")
    max_file_mib: int = Field(_LIMITS.max_file_bytes // 2**20, ge=1, description="larger files are refused (MiB)")
    max_fps: float = Field(_LIMITS.max_fps, gt=0, description="videos with a higher frame rate are refused")
    skip_nonref: bool = Field(_DECODE.skip_nonref, description="H.264/HEVC: skip non-reference frames while"
                              " decoding (faster on streams with B-frames; a sample may come up to 2 source frames"
                              " early)")

    def limits(self) -> InputLimits:
        """The limits ``workers.decode.probe`` checks before any frame is decoded."""
        return InputLimits(max_pixels=self.max_pixels, max_file_bytes=self.max_file_mib * 2**20,
                           max_duration_s=self.max_duration_s, max_fps=self.max_fps)


class EmbedSettings(BaseModel):
    model: str = Field("sscd_distilled", description="sscd_distilled, sscd, or torch (TorchScript/state dict)")
    model_path: str = Field("", description="checkpoint file for the torch backend")
    model_name: str = Field("", description="name recorded for a torch model (default: the file stem)")
    dim: int = Field(0, ge=0, description="output size of a TorchScript model (ISC defaults to 256)")
    arch: str = Field("", description="timm architecture for a state-dict checkpoint, e.g."
                      " tf_efficientnetv2_m_in21ft1k (ISC)")
    input_size: int = Field(0, ge=0, description="square input side in pixels; 0 means the model's default")
    resize: Literal["", "squash", "crop"] = Field("", description="squash to a square, or short side + centre"
                                                 " crop; empty means the model's default")
    device: str = Field("auto", description="auto (CUDA when present), cuda, cuda:N or cpu")
    batch_size: int = Field(32, ge=1, description="frames per model call")
    threads: int = Field(0, ge=0, description="CPU threads for inference; 0 lets the runtime decide")
    parallel_videos: int = Field(2, ge=1, le=64, description="videos one ingest process embeds at once (each its"
                                 " own ffmpeg, all feeding the process's one model session): `copycat ingest` in"
                                 " embedded mode, and the thread count of an embed worker (`--pool threads`)")
    matrix_dtype: Literal["float16", "float32"] = Field("float16", description="dtype of stored frame matrices")


class FramesSettings(BaseModel):
    """Which frames count as evidence (``workers/informative.py``; thresholds measured by bench/informative.py)."""

    mask: bool = Field(True, description="leave black, blank, title-card and test-pattern frames out of search"
                       " and localisation")
    min_contrast: float = Field(3.0, ge=0, description="frames with less luma contrast (0-255) are blank")
    max_flat: float = Field(0.88, gt=0, le=1, description="frames with at least this share of flat background"
                            " are plain cards")
    max_pattern_similarity: float = Field(0.4, description="frames this similar to a drawn test pattern are"
                                          " test patterns")


class SelectSettings(BaseModel):
    search_limit: int = Field(_QUERY.search_limit, ge=1, le=16384, description="Milvus hits per query frame")
    top_k: int = Field(_QUERY.top_k, ge=1, description="candidate videos localised per query")
    reduce: Literal["sum", "mean", "max", "min", "count", "row_max"] = Field(
        _QUERY.reduce, description="hit aggregation per video (row_max: sum over query rows of the best hit)")
    per_video: bool = Field(_QUERY.per_video, description="each query vector counts a video once, by its best frame (a"
                            " grouping search), instead of every one of its frames among the hits (fixture F1"
                            " 0.934 against 0.927, video recall 1.0; bench/tune.py)")


class LocaliseSettings(BaseModel):
    """The temporal network's parameters: ``workers.localise.TNParams``'s fields, with its defaults (chosen on
    the fixture benchmark, bench/tune.py; VCSL's are 10/5/10/0.2/5/0.3). ``Settings.tn_params`` builds the
    localiser's parameters from them. A variable cannot say None: END_FLOOR 0 and QUERY_OVERLAP 1 turn those
    options off."""

    tn_max_step: int = Field(_TN.tn_max_step, ge=2, description="largest temporal jump between matched frames")
    tn_top_k: int = Field(_TN.tn_top_k, ge=1, description="reference frames kept per query frame")
    max_path: int = Field(_TN.max_path, ge=0, description="segments tried per pair is max_path + 1")
    min_sim: float = Field(_TN.min_sim, description="minimum frame similarity on a path and per segment")
    min_length: int = Field(_TN.min_length, ge=0, description="segments must span more than this many frames on"
                            " both axes")
    max_iou: float = Field(_TN.max_iou, ge=0, le=1, description="overlap above which a later segment is dropped")
    trim: bool = Field(_TN.trim, description="drop path ends whose similarity is below min_sim")
    merge_gap: int = Field(_TN.merge_gap, ge=0, description="join segments on one diagonal separated by at most"
                           " this")
    split_jump: int = Field(_TN.split_jump, ge=0, description="cut a path where its time offset jumps by more"
                            " than this many frames (footage inserted into a copy)")
    end_floor: float = Field(_TN.end_floor, ge=0, le=1, description="trim path ends whose similarity is below"
                             " this times the path's median (0: off)")
    query_overlap: float = Field(_TN.query_overlap, ge=0, le=1, description="drop a segment lying more than this"
                                 " share inside a stronger one's query span (1: off)")
    snap_ends: bool = Field(_TN.snap_ends, description="put path ends back on the copy's diagonal: drop an end"
                            " reached by an offset jump, extend each end along its diagonal while similarity stays"
                            " above the end floor")
    prefer_stronger: bool = Field(_TN.prefer_stronger, description="a path overlapping an accepted segment"
                                  " replaces it when its mean similarity is higher and it spans 80% of its query"
                                  " frames")
    min_segment_score: float = Field(_TN.min_segment_score, ge=0, le=1, description="drop segments whose score is"
                                     " below this (on the score's scale; fixture F1 is the same from 0.2 to 0.35)")
    min_informative: float = Field(_TN.min_informative, ge=0, le=1, description="segments need at least this"
                                   " share of informative frames on both sides")
    score: Literal["bounded", "tn"] = Field(_TN.score, description="segment score: bounded (mean similarity x"
                                            " evidence of length, in [0, 1]) or tn (the temporal network's)")
    device: str = Field(_TN.device, description="device for the similarity matmul")


class QuerySettings(BaseModel):
    min_score: float = Field(_QUERY.min_score, ge=0, le=1, description="matches whose video score (best segment"
                             " score, in [0, 1]) is below this are not reported; measured in bench/tune.py")
    exclude_self: bool = Field(_QUERY.exclude_self, description="drop candidates with the query's own content")
    crop_grid: int = Field(_QUERY.crop_grid, ge=1, le=4, description="also search the NxN tiles of each query frame"
                           " (finds picture-in-picture copies; N²+1 embeddings and searches per frame); 1 = whole"
                           " frames")
    extra_views: list[ExtraView] = Field(
        list(_QUERY.extra_views), description="more query views, one embedding and search each per frame: flip"
        " (mirror), halves (left, right, top, bottom: 4), unborder (the picture inside a border, where one is found),"
        " unfill (the sharp picture inside a blurred fill, as in 9:16 re-uploads, where one is found)")


class WatchSettings(BaseModel):
    mode: Literal["auto", "listen", "poll"] = Field("auto", description="listen to MinIO notifications, poll the"
                                                    " buckets, or listen when the server can (auto)")
    poll_interval_s: float = Field(10.0, gt=0, description="sweep period when polling")
    reconnect_max_s: float = Field(60.0, gt=0, description="longest wait before reconnecting the listener")


class FsckSettings(BaseModel):
    interval_s: int = Field(3600, ge=60, description="period of beat's consistency check (report mode, see"
                            " `copycat fsck`)")
    upload_grace_s: int = Field(300, ge=0, description="an upload younger than this is not yet reported as"
                                " never registered (the watcher may not have seen it)")


def check_webhook_url(url: str) -> str:
    """An http(s) URL with a host: the only kind of address a webhook is sent to."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"webhook URL must be http(s)://host/..., got {url!r}")
    return url


class WebhooksSettings(BaseModel):
    """Signed event deliveries (``service/events.py``); a query job may add its own ``callback_url``."""

    endpoints: Annotated[list[str], NoDecode] = Field([], description="URLs that get every"
                                                      " event (comma-separated)")
    secret: str = Field("", description="shared secret of the HMAC-SHA256 signature; empty sends unsigned"
                        " deliveries")
    timeout_s: float = Field(10.0, gt=0, le=300, description="seconds one delivery attempt may take")
    max_attempts: int = Field(6, ge=1, le=50, description="attempts per event and URL before it is given up")
    backoff_base_s: float = Field(2.0, gt=0, description="delay before the second attempt; doubles after each"
                                  " failed one")
    backoff_max_s: float = Field(600.0, gt=0, description="cap of the delay between attempts")

    @field_validator("endpoints", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [check_webhook_url(url) for url in value]


class CopiesSettings(BaseModel):
    """Copy detection on upload (``tasks/copies.py``): each newly indexed video searched against the library."""

    on_ingest: bool = Field(False, description="match every newly indexed video against the library and store"
                            " its copy relations")
    min_score: float = Field(0.35, ge=0, le=1, description="copied segments scoring below this are not stored"
                             " (nor their videos' matches)")
    top_k: int = Field(10, ge=1, description="candidate videos localised per newly indexed video")


class ReportSettings(BaseModel):
    thumbnail_height: int = Field(120, ge=32, le=720, description="height of the report's frame thumbnails"
                                  " (pixels)")
    matrix_max_px: int = Field(480, ge=64, le=4096, description="longest side of the report's similarity"
                                " matrix image (pixels)")


class StackSettings(BaseModel):
    s3_port: int = Field(8333, ge=1, le=55535, description="`copycat up`: SeaweedFS S3 port (its gRPC port is +10000)")
    milvus_port: int = Field(19530, ge=1, le=65535, description="`copycat up`: Milvus Lite server port")
    restart_backoff_s: float = Field(1.0, gt=0, description="`copycat up`: wait before restarting a process that"
                                     " died; doubled per quick death")
    restart_backoff_max_s: float = Field(60.0, gt=0, description="`copycat up`: longest wait before a restart")
    stable_after_s: float = Field(60.0, gt=0, description="`copycat up`: a process up this long restarts with"
                                  " the first backoff again")
    stop_grace_s: float = Field(15.0, gt=0, description="`copycat up`: seconds a process gets to stop before it"
                                " is killed")


class FlowerSettings(BaseModel):
    address: str = Field("127.0.0.1", description="address Flower binds")
    port: int = Field(5555, ge=1, le=65535, description="Flower port")
    basic_auth: str = Field("", description="user:password required by Flower")


class ApiSettings(BaseModel):
    address: str = Field("127.0.0.1", description="address the HTTP API binds (`copycat api`)")
    port: int = Field(8000, ge=1, le=65535, description="HTTP API port")
    max_upload_mib: int = Field(_LIMITS.max_file_bytes // 2**20 + 1, ge=1, description="largest request body"
                                " (an upload with its form fields) in MiB; larger requests get 413")
    max_page_size: int = Field(1000, ge=1, description="most rows one list request returns (`limit`)")
    ready_timeout_s: float = Field(5.0, gt=0, description="/readyz: time each dependency gets to answer")
    metrics_buckets_s: list[float] = Field([0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800],
                                           description="/metrics: upper bounds of the stage-latency histograms")


class CoreSettings(BaseSettings):
    """Everything Copycat can be told but the signals' own groups (``Settings`` adds them; the table of all of
    them is in docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="COPYCAT_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path("copycat-data"), description="data directory for all embedded state")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    database: DatabaseSettings = DatabaseSettings()
    broker: BrokerSettings = BrokerSettings()
    s3: S3Settings = S3Settings()
    milvus: MilvusSettings = MilvusSettings()
    decode: DecodeSettings = DecodeSettings()
    embed: EmbedSettings = EmbedSettings()
    frames: FramesSettings = FramesSettings()
    select: SelectSettings = SelectSettings()
    localise: LocaliseSettings = LocaliseSettings()
    query: QuerySettings = QuerySettings()
    watch: WatchSettings = WatchSettings()
    fsck: FsckSettings = FsckSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    copies: CopiesSettings = CopiesSettings()
    report: ReportSettings = ReportSettings()
    stack: StackSettings = StackSettings()
    flower: FlowerSettings = FlowerSettings()
    api: ApiSettings = ApiSettings()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.home / 'copycat.db').resolve()}"

    @property
    def milvus_uri(self) -> str:
        return self.milvus.uri or str((self.home / "milvus.db").resolve())

    @property
    def objects_dir(self) -> Path:
        return (self.home / "objects").resolve()

    @property
    def scratch_dir(self) -> Path:
        return (self.home / "scratch").resolve()

    @property
    def embedded(self) -> bool:
        """True when tasks run in the calling process (no broker configured)."""
        return not self.broker.url

    @property
    def ingest_time_limit_s(self) -> int:
        """Celery's hard limit of one ingest call: the task limit plus the decode limit of the longest video
        the limits admit (``COPYCAT_DECODE__MAX_DURATION_S``)."""
        return int(self.broker.task_time_limit_s + self.decode_options().timeout_for(self.decode.max_duration_s))

    def decode_options(self) -> DecodeOptions:
        """How videos are decoded: each ``DecodeOptions`` field from its ``COPYCAT_DECODE__`` setting. The share
        of the process's cores is the process's own (``Resources.decode_options``), none here."""
        names = {f.name for f in fields(DecodeOptions)} - {"limits", "cores"}
        return DecodeOptions(**self.decode.model_dump(include=names), limits=self.decode.limits())

    def index_spec(self) -> IndexSpec:
        """How the Milvus collections are indexed and searched."""
        return IndexSpec(**self.milvus.model_dump(include=set(IndexSpec.__dataclass_fields__)))

    def tn_params(self) -> TNParams:
        """The localiser's parameters (``TemporalNetwork(settings.tn_params())`` is the product's localiser)."""
        return TNParams(**self.localise.model_dump())

    def frame_filter(self) -> FrameFilter:
        f = self.frames
        return FrameFilter(enabled=f.mask, min_contrast=f.min_contrast, max_flat=f.max_flat,
                           max_pattern_similarity=f.max_pattern_similarity)

    def query_params(self, overrides: dict[str, Any] | None = None) -> QueryParams:
        """A job's parameters: each ``QueryParams`` field from its ``COPYCAT_SELECT__`` or ``COPYCAT_QUERY__``
        setting, with the job's own values (not None) on top, each made the field's type."""
        settings = {**self.select.model_dump(), **self.query.model_dump()}
        values = {f.name: settings[f.name] for f in fields(QueryParams)}
        values |= {k: v for k, v in (overrides or {}).items() if k in values and v is not None}
        return QueryParams(**{k: type(getattr(_QUERY, k))(v) for k, v in values.items()})

    def copy_params(self) -> QueryParams:
        """Parameters of copy detection: whole frames only (a reference's stored matrix has no tiles)."""
        return self.query_params({"top_k": self.copies.top_k, "min_score": self.copies.min_score,
                                  "exclude_self": False, "crop_grid": 1})


Settings = create_model(
    "Settings", __base__=CoreSettings, __module__=__name__,
    __doc__="Everything Copycat can be told: the core groups, then one group per registered signal (its name).",
    **{name: (model, model()) for name, model in settings_groups().items()},
)  # type: ignore[call-overload]


def load_settings(stack_file: bool = True) -> Settings:
    """Read the environment, over the connection file of a ``copycat up`` that owns the home (see
    ``stack/stackfile.py``; ``up`` itself passes ``stack_file=False``); a bad value stops start-up with the
    variable's name."""
    home = Path(os.environ.get("COPYCAT_HOME") or Settings.model_fields["home"].default)
    stack = StackFile(home)
    try:
        return Settings(_env_file=stack.env_path if stack_file and stack.present() else None)
    except ValidationError as exc:
        problems = "; ".join(
            f"COPYCAT_{'__'.join(str(p).upper() for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, in declaration order."""
    rows: list[tuple[str, str, str]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub_name, sub_field in annotation.model_fields.items():
                rows.append((f"COPYCAT_{name.upper()}__{sub_name.upper()}", _shown(sub_field.default),
                             sub_field.description or ""))
        else:
            rows.append((f"COPYCAT_{name.upper()}", _shown(field.default), field.description or ""))
    return rows


def _shown(value: object) -> str:
    return "" if value in ("", []) else str(value)
