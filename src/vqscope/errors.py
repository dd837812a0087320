"""Typed errors, one class per way an input or a model can be unusable.

Every error carries its own process exit code so that scripts driving the CLI can tell a
missing file from a corrupt one without parsing text, and its message is a single line a
person can act on. Anything that is not a `VQScopeError` is a bug in vqscope.
"""

from __future__ import annotations


class VQScopeError(Exception):
    """Base class: a clear, expected failure with a one-line message."""

    exit_code: int = 1
    kind: str = "error"

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path

    @property
    def message(self) -> str:
        text = str(self.args[0]) if self.args else self.kind
        return text.replace("\n", " ").strip()

    def to_dict(self) -> dict[str, object]:
        return {"error": self.kind, "message": self.message, "exit_code": self.exit_code}


# --- input errors (10-19) -----------------------------------------------------------------
class InputNotFoundError(VQScopeError):
    exit_code = 10
    kind = "not_found"


class InputPermissionError(VQScopeError):
    exit_code = 11
    kind = "permission_denied"


class EmptyFileError(VQScopeError):
    exit_code = 12
    kind = "empty_file"


class NotAVideoError(VQScopeError):
    exit_code = 13
    kind = "not_a_video"


class NoVideoStreamError(VQScopeError):
    """The container opens but holds no picture stream (audio only, subtitles, cover art)."""

    exit_code = 14
    kind = "no_video_stream"


class CorruptVideoError(VQScopeError):
    """The stream is damaged: packets fail to decode or no frame comes out at all."""

    exit_code = 15
    kind = "corrupt_video"


class TruncatedVideoError(VQScopeError):
    """Decoding ends well before the duration the container declares."""

    exit_code = 16
    kind = "truncated_video"


class ZeroDurationError(VQScopeError):
    exit_code = 17
    kind = "zero_duration"


class InputIsDirectoryError(VQScopeError):
    exit_code = 18
    kind = "is_a_directory"


# --- model and weights errors (20-29) ------------------------------------------------------
class ModelNotFoundError(VQScopeError):
    exit_code = 20
    kind = "model_not_found"


class ModelFileError(VQScopeError):
    """A model file exists but is not a vqscope model of a format this version reads."""

    exit_code = 21
    kind = "bad_model_file"


class WeightsError(VQScopeError):
    """Backbone weights are missing, unreachable, or fail their hash check."""

    exit_code = 22
    kind = "weights_error"


class UnknownBackboneError(VQScopeError):
    exit_code = 23
    kind = "unknown_backbone"


# --- usage and output errors ---------------------------------------------------------------
class ConfigError(VQScopeError):
    exit_code = 2
    kind = "bad_configuration"


class OutputError(VQScopeError):
    exit_code = 24
    kind = "output_error"


class RuntimeUnavailableError(VQScopeError):
    """An inference runtime (ONNX Runtime, TensorRT) is not installed or cannot run this model."""

    exit_code = 25
    kind = "runtime_unavailable"


#: Exit code of a multi-file run in which some (not all) files failed.
class NotPredictedError(ConfigError):
    """A dimension (or the distortion head) was asked for that the model does not predict:
    a usage error, not a failure of the video (another model or question is what helps)."""

    kind = "not_predicted"


class LLMError(VQScopeError):
    """The language model server could not be reached or gave no usable answer."""

    exit_code = 26
    kind = "llm_error"


class NotBetterError(VQScopeError):
    """A model fitted to people's ratings does not beat the model it would replace in
    cross-validation, so it is not published (unless forced). `result` holds what was
    measured (a `studies.fit.RatedFit` with nothing written), for a report of the refusal."""

    exit_code = 27
    kind = "not_better"
    result: object = None


# --- rating studies (28) ---------------------------------------------------------------------
class StudyError(VQScopeError):
    """A rating study cannot do what was asked (the `kind` says why; the service maps each
    kind to its HTTP status: unknown -> 404, conflicts -> 409, bad answers -> 422)."""

    exit_code = 28
    kind = "study_error"


class UnknownStudyError(StudyError):
    kind = "unknown_study"


class NotAssignedError(StudyError):
    """A rater asked for, or answered, something that is not on their task list."""

    kind = "not_assigned"


class DuplicateRatingError(StudyError):
    kind = "duplicate_rating"


class StudyClosedError(StudyError):
    kind = "study_closed"


class StudyFrozenError(StudyError):
    """Items cannot change once raters were invited (their task lists are drawn from them)."""

    kind = "study_frozen"


class BadRatingError(StudyError):
    kind = "bad_rating"


class OutOfOrderError(StudyError):
    """A real item answered before the training round was finished."""

    kind = "out_of_order"


# --- the service's storage and start-up (29-31) ------------------------------------------------
class StorageError(VQScopeError):
    """The service's data folder or database cannot be used as it is: a database file that is
    empty, not SQLite, damaged, another application's, or of a newer vqscope; a data folder that
    cannot be created or written. Refused at start, naming the file, so that no job is lost by
    starting afresh on top of it (the `kind` says which)."""

    exit_code = 29
    kind = "storage_error"


class EmptyDatabaseError(StorageError):
    """A database file of 0 bytes (truncated, or replaced by an empty file): its jobs are gone."""

    kind = "empty_database"


class NotADatabaseError(StorageError):
    """A file where the database should be that is not SQLite at all (a text file, an image)."""

    kind = "not_a_database"


class CorruptDatabaseError(StorageError):
    kind = "corrupt_database"


class ForeignDatabaseError(StorageError):
    """A SQLite database with tables but no vqscope schema: another application's file."""

    kind = "foreign_database"


class SchemaTooNewError(StorageError):
    """The database was upgraded by a newer vqscope; this one does not know its schema."""

    kind = "schema_too_new"


class DataFolderError(StorageError):
    kind = "data_folder_unusable"


class DatabaseUnavailableError(VQScopeError):
    """The database server cannot be reached (down, refusing, wrong host or credentials): worth
    retrying, unlike a StorageError. Over HTTP a database outage is a 503 with Retry-After."""

    exit_code = 30
    kind = "database_unavailable"


class ListenError(VQScopeError):
    """`serve` cannot listen on the host and port asked for (in use, not allowed, not local)."""

    exit_code = 31
    kind = "cannot_listen"


# --- worker processes (32) --------------------------------------------------------------------
class WorkerCrashError(VQScopeError):
    """A worker process (feature extraction, decoding) died instead of returning: killed by the
    system (out of memory), crashed, or exited while starting. Not a fault of one video and not
    a bug in the caller's input: the message says what killed it and what to try."""

    exit_code = 32
    kind = "worker_died"


class UnanswerableQuestionError(ConfigError):
    """`vqscope ask` was asked what no picture-quality model can tell (the sound, the content,
    taste): a usage error, refused before any video is scored."""

    kind = "unanswerable"


EXIT_SOME_FAILED = 3
#: Exit code of a bug: an exception that is not a VQScopeError.
EXIT_INTERNAL = 1
