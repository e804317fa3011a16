"""The tracking protocol's events as pydantic models: one definition for both ends of the wire.

The trainer's ``Tracker`` builds every event through these models and the control plane's ingest
parses every event with them (``webapp/tracking/events.py``), so the two cannot drift apart, and
``EVENT_LIST_SCHEMA`` (served at ``GET /api/v1/tracking/schema.json``) tells a third-party trainer
exactly what the server accepts (docs/api-contract.md "Ingest").

Why the validators are written out instead of pydantic's ``StrictInt``/``confloat``: the server
answers each rejected event with a reason the trainer logs, and those reasons have always named the
field in plain words ("step must be between 0 and 2147483647"); trainers, tests and the run's log
rely on them. Each reusable type below therefore checks with a ``BeforeValidator`` that raises our
message, and keeps its ``Field`` bounds so that the JSON Schema still shows them. Two wire rules
that pydantic's defaults do not follow: a boolean is never a number, and a non-finite number (NaN,
``1e999``) in a number field means "no value" (null), as the trainer's JSON writer sends it.

Storage limits of the server (no NUL or lone surrogates in text, JSON numbers a column can hold)
are checked by the server beside these models, not here: they are PostgreSQL's rules, not the
protocol's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fipo_engine import token_channels

EVENT_TYPES = ("metric", "sample", "status", "checkpoint", "eval", "log")
STATUS_STATES = ("running", "succeeded", "failed")
MAX_SEQ = 2**62
MAX_STEP = 2**31 - 1
MAX_NAME = 200
MAX_TEXT = 1_000_000
MAX_VALUES_PER_EVENT = 10_000
MAX_INDEX = 1_000_000
MAX_LENGTH = 10**9
#: Upper bound of a sample's ``num_minibatches`` (optimizer steps per rollout batch; real runs use < 100).
MAX_MINIBATCHES = 1_000_000
#: Integer columns of the leaderboard (PositiveIntegerField / IntegerField on PostgreSQL).
INT_COLUMN_MAX = 2**31 - 1

# ------------------------------------------------------------------------------ error reasons
_FIELD = "fipo_field"  # the reason follows the field's path: "step" + "must be an integer"
_WHOLE = "fipo_event"  # the reason stands alone (it names what it is about itself)


def _bad(reason: str) -> NoReturn:
    raise PydanticCustomError(_FIELD, reason)


def _reject(reason: str) -> NoReturn:
    raise PydanticCustomError(_WHOLE, reason)


def _path(loc: tuple[int | str, ...]) -> str:
    """``("values", "loss")`` -> ``values['loss']``; ``("entropy", 3)`` -> ``entropy[3]``."""
    out = ""
    for part in loc:
        if not out:
            out = str(part)
        elif isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f"[{part!r}]"
    return out


def error_reason(error: Mapping[str, Any], *, skip: int = 0) -> str:
    """One pydantic error as the protocol's reason. ``skip``: leading ``loc`` parts that are not
    fields (the union's tag when an event was validated through ``EVENT_ADAPTER``)."""
    loc, kind = tuple(error["loc"])[skip:], error["type"]
    if kind == _WHOLE:
        return str(error["msg"])
    path = _path(loc)
    if kind == _FIELD:
        return f"{path} {error['msg']}" if path else str(error["msg"])
    if kind == "missing":
        return f"{path} is required"
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        given = error.get("ctx", {}).get("tag") if kind == "union_tag_invalid" else None
        return f"unknown type {given!r}; valid: {', '.join(EVENT_TYPES)}"
    return f"{path}: {error['msg']}" if path else str(error["msg"])


class EventError(ValueError):
    """An event the protocol refuses; the message is the reason the server sends back."""


# ------------------------------------------------------------------------------ value types
def _int(lo: int, hi: int) -> Any:
    """An integer in [lo, hi]; booleans and floats (even ``3.0``) are refused."""

    def check(value: Any) -> int:
        if type(value) is bool or not isinstance(value, int):
            _bad("must be an integer")
        if not lo <= value <= hi:
            _bad(f"must be between {lo} and {hi}")
        return value

    return Annotated[int, Field(ge=lo, le=hi), BeforeValidator(check)]


def _finite_or_none(value: Any) -> float | None:
    """A finite float or None: null, NaN and infinities are "no value"; booleans are not numbers."""
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, int | float):
        _bad("must be a number or null")
    try:
        out = float(value)
    except OverflowError:
        _bad("is out of range")
    return out if math.isfinite(out) else None


def _text(limit: int, *, null_is_empty: bool = False) -> Any:
    """A string of at most ``limit`` characters (``null_is_empty``: null reads as "")."""

    def check(value: Any) -> str:
        if value is None and null_is_empty:
            return ""
        if not isinstance(value, str):
            _bad("must be a string")
        if len(value) > limit:
            _bad(f"longer than {limit} characters")
        return value

    return Annotated[str, Field(max_length=limit), BeforeValidator(check)]


SEQ_RULE = f"must be an integer between 1 and {MAX_SEQ}"


def _seq(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= MAX_SEQ:
        _bad(SEQ_RULE)
    return value


Seq = Annotated[int, Field(ge=1, le=MAX_SEQ), BeforeValidator(_seq)]
Step = _int(0, MAX_STEP)
Number = Annotated[float | None, BeforeValidator(_finite_or_none)]
Text = _text(MAX_TEXT)


def _metric_name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        _reject(f"metric names must have 1 to {MAX_NAME} characters")
    return value


def _metric_values(value: Any) -> Any:
    if not isinstance(value, dict):
        _reject("values must be an object of name: number")
    if len(value) > MAX_VALUES_PER_EVENT:
        _reject(f"at most {MAX_VALUES_PER_EVENT} values per event")
    return value


MetricName = Annotated[str, Field(min_length=1, max_length=MAX_NAME), BeforeValidator(_metric_name)]
MetricValues = Annotated[dict[MetricName, Number], Field(max_length=MAX_VALUES_PER_EVENT),
                         BeforeValidator(_metric_values)]


# ------------------------------------------------------------------------------ events
class _Event(BaseModel):
    """What every event has: ``seq`` (1, 2, 3, ... per run; the client's spool numbers them) and ``type``."""

    model_config = ConfigDict(frozen=True)

    seq: Seq

    def payload(self) -> dict[str, Any]:
        """The event as the server stores it (without ``seq`` and ``type``)."""
        return self.model_dump(exclude={"seq", "type"})


class MetricEvent(_Event):
    """Scalars of one training step; names come from ``fipo_engine.metrics_catalog`` (others are kept)."""

    type: Literal["metric"] = "metric"
    step: Step
    values: MetricValues

    def payload(self) -> dict[str, Any]:
        # a null (or NaN) value is "not measured this step": no point is stored
        return {"step": self.step, "values": {k: v for k, v in self.values.items() if v is not None}}


class PromptMessage(BaseModel):
    """One chat message of a prompt; the server shows them one per line as ``role: content``."""

    role: _text(100) = ""  # type: ignore[valid-type]
    content: Text = ""


def _prompt(value: Any) -> Any:
    """Text, or chat messages ``[{"role", "content"}]``; each message is checked here, so that a bad
    one is named as before ("prompt role must be a string") rather than per member of the union."""
    if not isinstance(value, list):
        return _prompt_part(value, "prompt", MAX_TEXT)
    for message in value:
        if not isinstance(message, dict):
            _reject("prompt messages must be objects with role and content")
        _prompt_part(message.get("role", ""), "prompt role", 100)
        _prompt_part(message.get("content", ""), "prompt content", MAX_TEXT)
    return value


def _prompt_part(value: Any, name: str, limit: int) -> Any:
    if not isinstance(value, str):
        _reject(f"{name} must be a string")
    if len(value) > limit:
        _reject(f"{name} longer than {limit} characters")
    return value


def _tokens(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        _reject("tokens must be a list of strings")
    return value


def _correct(value: Any) -> Any:
    if value is not None and not isinstance(value, bool):
        _reject("correct must be true, false or null")
    return value


def _channel_values(name: str, values: list[Any]) -> list[float | None]:
    """One per-token channel: numbers or null, non-finite as null (all floats: one C-level check)."""
    if not set(map(type, values)) - {float} and math.isfinite(sum(values)):
        return list(values)
    out: list[float | None] = []
    for i, value in enumerate(values):
        try:
            out.append(_finite_or_none(value))
        except PydanticCustomError as exc:
            _reject(f"{name}[{i}] {exc.message()}")
    return out


def _channel_properties(schema: dict[str, Any]) -> None:
    """The JSON Schema of a sample lists the catalog's channels (any other list of numbers is kept too)."""
    item = {"anyOf": [{"type": "number"}, {"type": "null"}]}
    for channel in token_channels.CHANNELS:
        schema["properties"][channel.name] = {"type": "array", "items": item, "title": channel.label,
                                              "description": f"{channel.meaning} Unit: {channel.unit}."}


class SampleEvent(_Event):
    """One response with its tokens and per-token channels (``fipo_engine.token_channels``).

    Every other key whose value is a list is a channel: one number (or null) per token."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra=_channel_properties)

    type: Literal["sample"] = "sample"
    step: Step
    index: _int(0, MAX_INDEX)  # type: ignore[valid-type]
    tokens: Annotated[list[str], BeforeValidator(_tokens)] = Field(default_factory=list)
    correct: Annotated[bool | None, BeforeValidator(_correct)] = None
    prompt: Annotated[str | list[PromptMessage], BeforeValidator(_prompt)] = ""
    response: Text = ""
    reward: Number = None
    length: _int(0, MAX_LENGTH) | None = Field(  # type: ignore[valid-type]
        default=None, description="Response length in tokens (default: the number of tokens).")
    num_minibatches: _int(1, MAX_MINIBATCHES) | None = Field(  # type: ignore[valid-type]
        default=None, description="Optimizer steps (mini-batches) of the rollout batch.")
    minibatch: _int(0, MAX_MINIBATCHES - 1) | None = Field(  # type: ignore[valid-type]
        default=None, description="Which mini-batch trained it (0-based): FIPO's future-KL is 0 in mini-batch 0.")

    @model_validator(mode="after")
    def _check(self) -> SampleEvent:
        if self.minibatch is not None and self.num_minibatches is not None and self.minibatch >= self.num_minibatches:
            _reject(f"minibatch must be below num_minibatches ({self.num_minibatches}), got {self.minibatch}")
        extra = self.__pydantic_extra__ or {}
        for name, values in extra.items():
            if not isinstance(values, list):
                continue  # not a channel: ignored
            if len(name) > MAX_NAME:
                _reject(f"channel names must have at most {MAX_NAME} characters")
            if len(values) != len(self.tokens):
                _reject(f"channel {name!r} has {len(values)} values for {len(self.tokens)} tokens")
            extra[name] = _channel_values(name, values)
        return self

    @property
    def channels(self) -> dict[str, list[float | None]]:
        return {k: v for k, v in (self.__pydantic_extra__ or {}).items() if isinstance(v, list)}

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{m.role}: {m.content}" for m in self.prompt)

    def payload(self) -> dict[str, Any]:
        return {
            "step": self.step, "index": self.index, "prompt": self.prompt_text(), "response": self.response,
            "reward": self.reward, "correct": self.correct, "tokens": self.tokens, "channels": self.channels,
            "length": len(self.tokens) if self.length is None else self.length,
            "minibatch": self.minibatch, "num_minibatches": self.num_minibatches,
        }


def _state(value: Any) -> Any:
    if value not in STATUS_STATES:
        _reject(f"state must be one of {', '.join(STATUS_STATES)}")
    return value


class StatusEvent(_Event):
    """The trainer's state: ``running`` when it starts, ``succeeded`` / ``failed`` when it ends."""

    type: Literal["status"] = "status"
    state: Annotated[Literal["running", "succeeded", "failed"], BeforeValidator(_state)]
    message: _text(2000, null_is_empty=True) = ""  # type: ignore[valid-type]


class CheckpointEvent(_Event):
    """A checkpoint written at ``step`` (``uri``: where, e.g. a directory of the run)."""

    type: Literal["checkpoint"] = "checkpoint"
    step: Step
    uri: _text(4000)  # type: ignore[valid-type]


def _benchmark(value: Any) -> Any:
    if value == "":
        _reject("benchmark must not be empty")
    return value


class EvalEvent(_Event):
    """A held-out evaluation (``fipo_engine.eval``'s result). Other keys (``pass_at_1_ci``, ``k``,
    ``n_problems``, ...) are stored as sent; a leaderboard entry is made of them when they pass
    ``EvalScores`` (webapp/leaderboards)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: Literal["eval"] = "eval"
    benchmark: Annotated[_text(MAX_NAME), BeforeValidator(_benchmark)]  # type: ignore[valid-type]
    step: Step = None  # type: ignore[assignment]  # absent: not tied to a training step
    pass_at_1: Number = None
    pass_at_k: Number = None
    cons_at_k: Number = None

    def payload(self) -> dict[str, Any]:
        return self.model_dump(exclude={"seq", "type"}, exclude_unset=True)


class LogEvent(_Event):
    """A line (or lines) for the run's log."""

    type: Literal["log"] = "log"
    text: _text(100_000)  # type: ignore[valid-type]


Event = Annotated[MetricEvent | SampleEvent | StatusEvent | CheckpointEvent | EvalEvent | LogEvent,
                  Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
#: The ingest body: a JSON list of events.
EVENT_LIST_ADAPTER: TypeAdapter[Any] = TypeAdapter(list[Event])
MODELS: dict[str, type[_Event]] = {"metric": MetricEvent, "sample": SampleEvent, "status": StatusEvent,
                                   "checkpoint": CheckpointEvent, "eval": EvalEvent, "log": LogEvent}


def parse_event(raw: Any) -> Any:
    """One wire event (a JSON object) as its model; raises ``EventError`` with the reason."""
    # object, seq, type: checked first and in this order (what the server has always answered first)
    if not isinstance(raw, dict):
        raise EventError("an event must be an object")
    seq = raw.get("seq")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise EventError(f"seq {SEQ_RULE}")
    type_ = raw.get("type")
    if type_ not in MODELS:  # pydantic's own message would show the tag as a string ('3' for 3)
        raise EventError(f"unknown type {type_!r}; valid: {', '.join(EVENT_TYPES)}")
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise EventError(error_reason(exc.errors()[0], skip=1)) from None


def build(type_: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The wire form of an event the client is about to send (no ``seq``: its spool numbers it).

    Validated by the same model the server uses; raises ``EventError`` with the server's reason."""
    model = MODELS[type_]
    try:
        event = model.model_validate({**fields, "seq": 1, "type": type_})  # a placeholder seq
    except ValidationError as exc:
        raise EventError(error_reason(exc.errors()[0])) from None
    return event.model_dump(exclude={"seq"}, exclude_unset=True) | {"type": type_}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the ingest body (a list of events), for third-party trainers."""
    schema = EVENT_LIST_ADAPTER.json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "FIPO tracking events (POST /api/v1/runs/<id>/events)", **schema}


# ------------------------------------------------------------------------------ leaderboard scores
def _fraction(required: bool) -> Any:
    def check(value: Any) -> float | None:
        if value is None:
            if required:
                _bad("required")
            return None
        if type(value) is bool or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
            _bad("must be a number between 0 and 1")
        return float(value)

    return Annotated[float | None, Field(ge=0, le=1), BeforeValidator(check)]


def _column_int(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, int) or not 0 <= value <= INT_COLUMN_MAX:
        _bad(f"must be an integer between 0 and {INT_COLUMN_MAX}")
    return value


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, int | float) or not math.isfinite(value):
        _bad("must be a number")
    return float(value)


def _interval(value: Any) -> Any:
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or len(value) != 2
            or any(type(x) is bool or not isinstance(x, int | float) or not 0 <= x <= 1 for x in value)
            or value[0] > value[1]):
        _bad("must be [low, high] with 0 <= low <= high <= 1")
    return (float(value[0]), float(value[1]))


ColumnInt = Annotated[int | None, Field(ge=0, le=INT_COLUMN_MAX), BeforeValidator(_column_int)]
Finite = Annotated[float | None, BeforeValidator(_finite)]


class EvalScores(BaseModel):
    """The numbers of an evaluation as a leaderboard entry needs them: an ``eval`` event or a
    ``fipo eval --json`` result. Stricter than ``EvalEvent`` (which stores what it is sent): rates
    are fractions in [0, 1], counts fit an integer column, the interval is ordered.

    Sampling settings may sit at the top level or under ``settings`` (``fipo eval --json``);
    ``max_tokens`` is also read as ``max_new_tokens``."""

    model_config = ConfigDict(extra="allow")

    pass_at_1: _fraction(True)  # type: ignore[valid-type]
    cons_at_k: _fraction(False) = None  # type: ignore[valid-type]
    pass_at_k: _fraction(False) = None  # type: ignore[valid-type]
    truncation_rate: _fraction(False) = None  # type: ignore[valid-type]
    k: ColumnInt = None
    n_problems: ColumnInt = None
    step: ColumnInt = None
    pass_at_1_ci: Annotated[tuple[float, float] | None, BeforeValidator(_interval)] = None
    temperature: Finite = None
    top_p: Finite = None
    max_tokens: ColumnInt = None

    @model_validator(mode="before")
    @classmethod
    def _from_settings(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        settings = data.get("settings") if isinstance(data.get("settings"), Mapping) else {}
        out = dict(data)
        out["temperature"] = data.get("temperature", settings.get("temperature"))
        out["top_p"] = data.get("top_p", settings.get("top_p"))
        out["max_tokens"] = data.get("max_tokens", data.get("max_new_tokens", settings.get("max_new_tokens")))
        return out


def eval_scores_errors(exc: ValidationError) -> list[dict[str, str]]:
    """``EvalScores`` errors as the API's ``fields`` (``{"path", "message"}``, dotted paths)."""
    out = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"])
        message = "required" if error["type"] == "missing" else str(error["msg"])
        out.append({"path": path, "message": message})
    return out
