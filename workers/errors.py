"""Error families that tell an operator what to do.

``InputError``: the input itself is bad (not a video, truncated, too long). Retrying cannot help; the job
is marked ``failed`` with the error's ``code`` and message.
``TransientError``: a service (S3, Milvus, the database) is unreachable or overloaded. Tasks retry these
with exponential backoff and jitter.
``ConfigError``: the deployment is wrong (bad setting, missing weights, model mismatch). Fix and rerun.
"""

from __future__ import annotations


class CopycatError(Exception):
    """Base of every error Copycat raises on purpose."""

    code = "error"


class InputError(CopycatError):
    """The input cannot be processed; retrying will not help."""

    code = "bad_input"


class EmptyFile(InputError):
    """The file has zero bytes."""

    code = "empty_file"


class NotAVideo(InputError):
    """ffprobe cannot read the file as a media container."""

    code = "not_a_video"


class UnsupportedContainer(NotAVideo):
    """The file is a playlist, a still image or another format outside the accepted video containers."""

    code = "unsupported_container"


class NoVideoStream(InputError):
    """The container holds no video stream (audio-only, subtitles, a still image's cover art)."""

    code = "no_video_stream"


class TruncatedVideo(InputError):
    """The file ends early: the container index is missing or the stream stops mid-way."""

    code = "truncated"


class CorruptVideo(InputError):
    """The decoder reported errors while reading frames."""

    code = "corrupt"


class DecodeTimeout(InputError):
    """Decoding took longer than the configured limit."""

    code = "decode_timeout"


class LimitExceeded(InputError):
    """The video is over one of the configured input limits (``COPYCAT_DECODE__MAX_*``)."""

    code = "over_limit"


class VideoTooLong(LimitExceeded):
    """The video is longer than the configured maximum duration."""

    code = "too_long"


class FileTooLarge(LimitExceeded):
    """The file is larger than the configured maximum size."""

    code = "file_too_large"


class FrameTooLarge(LimitExceeded):
    """The frames have more pixels than the configured maximum."""

    code = "frame_too_large"


class FrameRateTooHigh(LimitExceeded):
    """The stream's frame rate is above the configured maximum."""

    code = "frame_rate_too_high"


class ObjectMissing(InputError):
    """The object named by a job does not exist (deleted before it was processed)."""

    code = "object_missing"


class InvalidObjectKey(ObjectMissing):
    """The key cannot name an object here: empty, with '.' or '..' parts, or a part or key too long."""

    code = "invalid_key"


class TransientError(CopycatError):
    """A dependency is unavailable for now; the task is retried with backoff."""

    code = "transient"


class StorageUnavailable(TransientError):
    """The object store did not answer or answered with a server error."""

    code = "storage_unavailable"


class VectorStoreUnavailable(TransientError):
    """Milvus did not answer or refused the request for a transient reason."""

    code = "milvus_unavailable"


class DatabaseUnavailable(TransientError):
    """The database did not answer."""

    code = "database_unavailable"


class ConfigError(CopycatError):
    """The deployment is misconfigured: a setting, a missing model file, a model/index mismatch."""

    code = "config"


class ModelMismatch(ConfigError):
    """Vectors from one model were about to be mixed with an index or query built by another."""

    code = "model_mismatch"


class UnsupportedMilvusVersion(ConfigError):
    """The Milvus server is older than Copycat supports (2.3) or reports a version it cannot read."""

    code = "milvus_version"


class WeightsMissing(ConfigError):
    """A model's weight file is not where the settings say it is."""

    code = "weights_missing"
