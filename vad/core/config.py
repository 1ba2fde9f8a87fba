"""The one typed configuration: a schema per `params.yaml` section, checked once when a stage or command starts.

`params.yaml` is the user's documentation of every knob (its comments say what each does and why the default);
this module says what each knob may be. Unknown keys are rejected with a suggestion, types and ranges are
checked, and every problem is reported the same way, as one line naming the file, line and key:

    params.yaml:87: ifd.max_lenght: unknown key (did you mean max_length?)

A stage sees only the params it declares (`Stage.params`, which is also what dvc.yaml tells DVC to track), so a
stage cannot read a param whose change would not rerun it."""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vad.core import devices as names
from vad.core import taxonomy
from vad.core.errors import VadError
from vad.core.paths import project_root

PARAMS_FILE = "params.yaml"


class ParamsError(VadError, ValueError):
    """A bad param. `key` is dotted (`ifd.max_length`); the message names file, line and key."""

    exit_code = 2

    def __init__(self, key: str, problem: str, path: str | Path | None = None, line: int | None = None):
        self.key, self.problem, self.path, self.line = key, problem, path, line
        super().__init__(self.format())

    def format(self) -> str:
        where = str(self.path or PARAMS_FILE)
        if self.line is None and self.key:
            self.line = _line_of(Path(self.path or project_root() / PARAMS_FILE), self.key)
        if self.line:
            where += f":{self.line}"
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"

    def __str__(self) -> str:
        return self.format()


# --- the sections -------------------------------------------------------------------------------------------
class Section(BaseModel):
    """A params.yaml section: strict keys, immutable, validated on assignment of the whole section."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    section: ClassVar[str] = ""

    @classmethod
    def from_params(cls, values: dict[str, Any] | None) -> "Section":
        """Validate one section's dict (tests and library callers; stages use `load_params`)."""
        try:
            return cls.model_validate(dict(values or {}))
        except ValidationError as e:
            raise _first_error(e, cls, prefix=cls.section) from None

    def replace(self, **changes: Any) -> "Section":
        """A validated copy with some fields changed."""
        return type(self).from_params({**self.model_dump(), **changes})


class Categorization(Section):
    level: str
    value: str

    @model_validator(mode="after")
    def _in_taxonomy(self):
        problem = taxonomy.check_categorization({"level": self.level, "value": self.value})
        if problem:
            raise ValueError(problem)
        return self

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "value": self.value}


class IngestParams(Section):
    section: ClassVar[str] = "ingest"
    min_chars: int = Field(2, ge=0)
    max_chars: int = Field(4000, ge=1)

    @model_validator(mode="after")
    def _order(self):
        if self.min_chars > self.max_chars:
            raise _at("min_chars", f"{self.min_chars} must not exceed max_chars ({self.max_chars})")
        return self


class SeedsParams(Section):
    section: ClassVar[str] = "seeds"
    domain_map: dict[str, Categorization]


class KeywordRule(Section):
    pattern: str
    level: str
    value: str

    @model_validator(mode="after")
    def _valid(self):
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise _at("pattern", f"{self.pattern!r} is not a regular expression: {e}") from None
        problem = taxonomy.check_categorization({"level": self.level, "value": self.value})
        if problem:
            raise ValueError(problem)
        return self


class SelectParams(Section):
    section: ClassVar[str] = "select"
    require_chosen_safe: bool = True
    max_chosen_severity: int = Field(0, ge=0, le=3)
    require_better_eq_safer: bool = True
    require_rejected_unsafe: bool = False
    min_response_words: int = Field(20, ge=0)
    max_response_words: int = Field(400, ge=1)
    verify_sha256: bool = True
    harm_map: dict[str, Categorization]
    keyword_map: list[KeywordRule]
    default_categorization: Categorization


class LLMParams(Section):
    """The `llm:` section. It holds the NAME of the environment variable with the API key (`api_key_env`),
    never the key itself, so no repr, log, lineage or dataset card can leak it."""

    section: ClassVar[str] = "llm"
    backend: Literal["local", "openai"] = "local"
    model: str = Field("gemma3-270m", min_length=1)  # local: alias or local HF folder; openai: served model name
    base_url: str = ""                 # openai only; "" = the OpenAI default endpoint
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(4, ge=1)  # openai: worker threads
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)  # transport retries per call (429, 5xx, timeouts, broken bodies)
    max_reasks: int = Field(1, ge=0)   # extra asks when the parser rejects the answer
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 1234
    batch_size: int = Field(8, ge=1)   # local: prompts generated together
    price_per_1k_input: float = Field(0.0, ge=0)
    price_per_1k_output: float = Field(0.0, ge=0)
    max_calls: int = Field(0, ge=0)      # spend guard: model calls one stage run may make; 0 = no cap
    max_cost: float = Field(0.0, ge=0)   # spend guard: estimated cost one stage run may spend; 0 = no cap
    # Rarely changed; may be set in params.yaml.
    repetition_penalty: float = Field(1.1, gt=0)  # local backend only
    device: str = "auto"                          # local backend only: auto | cpu | cuda | cuda:N (vad.compute.device)
    dtype: str = "auto"                           # local backend only: auto | bfloat16 | float16 | float32
    retry_base_s: float = Field(0.5, ge=0)        # first backoff delay; doubles per retry, with jitter
    retry_max_s: float = Field(30.0, ge=0)        # cap on one backoff delay (and on an honoured retry-after)

    _check_device = field_validator("device")(lambda v: _device(v))
    _check_dtype = field_validator("dtype")(lambda v: _dtype(v))

    @model_validator(mode="after")
    def _cost_needs_prices(self):
        if self.max_cost and not (self.price_per_1k_input or self.price_per_1k_output):
            raise _at("max_cost", f"{self.max_cost:g} needs llm.price_per_1k_input / price_per_1k_output (the cost "
                                  f"is estimated from them; both are 0)")
        return self


class EvolParams(Section):
    section: ClassVar[str] = "evol"
    rounds: int = Field(2, ge=0)
    seed_limit: int = Field(12, ge=0)
    breadth_share: float = Field(0.2, ge=0, le=1)
    rng_seed: int = 7
    refusal_max_chars: int = Field(80, ge=0)
    min_gain_chars: int = Field(6, ge=0)


class TranslateParams(Section):
    section: ClassVar[str] = "translate"
    limit: int = Field(4, ge=0)
    min_len_ratio: float = Field(0.25, gt=0)
    max_len_ratio: float = Field(1.5, gt=0)
    max_english_run: int = Field(40, ge=0)
    max_latin_share: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _order(self):
        if self.min_len_ratio >= self.max_len_ratio:
            raise _at("min_len_ratio", f"{self.min_len_ratio} must be below max_len_ratio ({self.max_len_ratio})")
        return self


class MergeParams(Section):
    section: ClassVar[str] = "merge"
    near_dup_threshold: float = Field(0.7, gt=0, lt=1)
    ngram: int = Field(3, ge=1)
    num_perm: int = Field(128, ge=16)
    lang: str = "zh"
    min_lang_score: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _lsh_can_band(self):
        from datasketch import MinHashLSH

        try:  # datasketch finds band/row counts for the threshold; some (threshold, num_perm) have none
            MinHashLSH(threshold=self.near_dup_threshold, num_perm=self.num_perm)
        except ValueError as e:
            raise _at("near_dup_threshold", f"{self.near_dup_threshold} cannot be banded with num_perm {self.num_perm} "
                                            f"(datasketch: {e})") from None
        return self


class ContentParams(Section):
    """Offline content checks of machine-made records in merge (vad/quality/content.py)."""

    section: ClassVar[str] = "content"
    max_dup_ngram_frac: float = Field(0.5, ge=0, le=1)
    min_han_chars: int = Field(4, ge=0)
    max_mark_share: float = Field(0.1, ge=0, le=1)
    refusal_max_chars: int = Field(80, ge=0)
    actions: dict[Literal["content_loop", "content_few_han", "content_marks", "content_refusal_only"],
                  Literal["drop", "flag"]] = {"content_loop": "drop", "content_few_han": "drop",
                                              "content_marks": "drop", "content_refusal_only": "flag"}

    @model_validator(mode="after")
    def _every_action(self):
        missing = {"content_loop", "content_few_han", "content_marks", "content_refusal_only"} - set(self.actions)
        if missing:
            raise ValueError(f"actions: no action (drop | flag) for {', '.join(sorted(missing))}")
        return self


class CategorizeParams(Section):
    """The categorizer of machine-made records (vad/judge/categorizer.py, stages categorize_train and judge)."""

    section: ClassVar[str] = "categorize"
    by: Literal["auto", "model", "llm"] = "auto"    # auto: the LLM when the judge runs, else the offline model
    min_confidence: float = Field(0.25, ge=0, le=1)  # below: the table default stays and the record is flagged
    folds: int = Field(5, ge=2)                      # cross-validation folds of the stage's metrics
    seed: int = 0


class JudgeParams(Section):
    """The LLM judge of machine-made records (vad/judge/llm_judge.py)."""

    section: ClassVar[str] = "judge"
    enabled: Literal["auto", "true", "false"] = "auto"  # auto: on with an endpoint (llm.backend openai)
    min_values: int = Field(3, ge=1, le=5)
    min_fidelity: int = Field(3, ge=1, le=5)
    min_fluency: int = Field(3, ge=1, le=5)
    on_fail: Literal["flag", "drop"] = "flag"


class IFDParams(Section):
    section: ClassVar[str] = "ifd"
    # scoring (ifd_score)
    model: str = Field("gemma3-270m", min_length=1)
    template: str = "alpaca_zh_v1"   # a name in vad/quality/ifd/templates.py (checked by the scorer)
    max_length: int = Field(512, ge=2)  # BOS + one answer token
    device: str = "auto"             # auto | cpu | cuda | cuda:N (vad.compute.device)
    dtype: str = "auto"              # auto | bfloat16 | float16 | float32
    batch_size: int | Literal["auto"] = "auto"        # sequences per forward batch; auto: 8 on CPU, 1024 on CUDA
    max_batch_tokens: int | Literal["auto"] = "auto"  # padded tokens per batch; auto: unbounded on CPU, 65536 on CUDA
    executor: Literal["local", "ray"] = "local"       # ray: Ray Data actors, cluster from RAY_ADDRESS
    ray_actors: int = Field(0, ge=0)                  # 0 = one per GPU of the cluster, else one per node
    # selection (ifd_select)
    min: float = 0.94
    max: float = 1.0
    top_fraction: float = Field(1.0, ge=0, le=1)

    _check_device = field_validator("device")(lambda v: _device(v))
    _check_dtype = field_validator("dtype")(lambda v: _dtype(v))

    @field_validator("batch_size", "max_batch_tokens")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if v != "auto" and v < 1:
            raise ValueError(f"must be auto or a positive integer (got {v!r})")
        return v

    @model_validator(mode="after")
    def _band(self):
        if self.min >= self.max:
            raise _at("min", f"{self.min} must be below ifd.max ({self.max})")
        if self.max_batch_tokens != "auto" and self.max_batch_tokens < self.max_length:
            raise _at("max_batch_tokens", f"{self.max_batch_tokens} must be at least ifd.max_length "
                                          f"({self.max_length}): one sequence must fit in a batch")
        return self


class ExportParams(Section):
    section: ClassVar[str] = "export"
    dataset_name: str = "VAD"
    version: str = "0.1.0"


class ReviewParams(Section):
    """Human review (`vad review serve`, the review stage): who reviews what, and what must be reviewed."""

    section: ClassVar[str] = "review"
    require: Literal["none", "generated", "all", "sample"] = "generated"
    reviewers: tuple[str, ...] = ()     # names; each record is assigned to one of them (empty: anyone may review)
    adjudicators: tuple[str, ...] = ()  # their decision wins over the reviewers' (conflicts)
    double_share: float = Field(0.1, ge=0, le=1)   # share of records reviewed by two reviewers (agreement)
    sample_share: float = Field(0.1, gt=0, le=1)   # require: sample — share of records that must be reviewed
    confidence: float = Field(0.95, gt=0, lt=1)    # of the sample's reject-rate interval
    seed: int = 7                       # assignment and sample draw (deterministic by record id)
    reasons: dict[str, str] = Field(min_length=1)  # reject reason code → label shown to reviewers

    @field_validator("reviewers", "adjudicators", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        names = [str(x).strip() for x in (v or ())]
        if any(not n or any(c.isspace() for c in n) for n in names):
            raise ValueError("reviewer names must be non-empty and without spaces")
        if len(set(names)) != len(names):
            raise ValueError("a name is listed twice")
        return tuple(names)

    @field_validator("reasons")
    @classmethod
    def _codes(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
        if bad:
            raise ValueError(f"reason codes must be lower_snake_case, got {bad[0]!r}")
        return v

    @model_validator(mode="after")
    def _roles(self):
        both = sorted(set(self.reviewers) & set(self.adjudicators))
        if both:
            raise _at("adjudicators", f"{both[0]} is also a reviewer (an adjudicator settles others' conflicts)")
        return self


class EvalParams(Section):
    """CValues-style two-choice evaluation (`vad eval`, `dvc repro evaluation/dvc.yaml`)."""

    section: ClassVar[str] = "eval"
    items: tuple[str, ...] = ("data/raw/eval/values_mc.jsonl",)  # files or folders of *.jsonl
    backend: Literal["local", "openai"] = "local"
    model: str = "gemma3-270m"      # local: alias or local HF folder; openai: served model name
    method: Literal["auto", "loglik", "generate"] = "auto"
    fewshot: Literal["auto", "true", "false"] = "auto"  # auto: loglik yes, generate no
    device: str = "auto"            # local model: auto | cpu | cuda | cuda:N (vad.compute.device)
    dtype: str = "auto"             # local model: auto | bfloat16 | float16 | float32
    threads: int = Field(0, ge=0)   # loglik torch threads; 0 = auto (free CPUs by load average, >= 1)
    max_new_tokens: int = Field(64, ge=1)  # generate
    base_url: str = ""              # openai; "" = llm.base_url
    api_key_env: str = ""           # openai; "" = llm.api_key_env
    limit: int = Field(0, ge=0)     # evaluate only the first N items (0 = all)

    _check_device = field_validator("device")(lambda v: _device(v))
    _check_dtype = field_validator("dtype")(lambda v: _dtype(v))

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, v: Any) -> Any:
        return (str(v),) if isinstance(v, (str, Path)) else tuple(str(x) for x in v or ())

    @field_validator("fewshot", mode="before")
    @classmethod
    def _fewshot(cls, v: Any) -> Any:
        return ("true" if v else "false") if isinstance(v, bool) else str(v).lower()

    @model_validator(mode="after")
    def _combination(self):
        if not self.items:
            raise _at("items", "is empty")
        if self.backend == "openai" and self.method == "loglik":
            raise _at("method", "loglik needs the local backend (chat APIs do not score given continuations)")
        return self

    @property
    def resolved_method(self) -> str:
        if self.method != "auto":
            return self.method
        return "loglik" if self.backend == "local" else "generate"

    @property
    def use_fewshot(self) -> bool:
        return self.resolved_method == "loglik" if self.fewshot == "auto" else self.fewshot == "true"


SECTIONS: dict[str, type[Section]] = {cls.section: cls for cls in (
    IngestParams, SeedsParams, SelectParams, LLMParams, EvolParams, TranslateParams, MergeParams, ContentParams, IFDParams,
    CategorizeParams, JudgeParams,
    ReviewParams, ExportParams, EvalParams)}


class Params(BaseModel):
    """The whole of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ingest: IngestParams
    seeds: SeedsParams
    select: SelectParams
    llm: LLMParams
    evol: EvolParams
    translate: TranslateParams
    merge: MergeParams
    content: ContentParams
    ifd: IFDParams
    categorize: CategorizeParams
    judge: JudgeParams
    review: ReviewParams
    export: ExportParams
    eval: EvalParams

    def view(self, declared: Iterable[str], stage: str = "") -> "ParamsView":
        return ParamsView(self, declared, stage)


# --- loading and errors ---------------------------------------------------------------------------------------
def _dtype(v: str) -> str:
    if not names.is_dtype(v):
        raise ValueError(f"unknown dtype {v!r}{suggest(v, names.DTYPE_CHOICES)}; use {names.DTYPE_HELP}")
    return v


def _device(v: str) -> str:
    if not names.is_device(v):
        raise ValueError(f"unknown device {v!r}; use {names.DEVICE_HELP}")
    return v


def suggest(word: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest of `options`, or ''."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _at(key: str, problem: str) -> ValueError:
    """An error of a model validator that belongs to one of the section's keys (reported at that key)."""
    return ValueError(f"@{key}: {problem}")


def _describe(err: dict, key: str, model: type[BaseModel] | None) -> str:
    kind, msg = err["type"], err["msg"]
    got = err.get("input")
    if kind == "extra_forbidden":
        name = key.rsplit(".", 1)[-1]
        return "unknown key" + (suggest(name, model.model_fields) if model is not None else "")
    if kind == "missing":
        return "missing key"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{msg.lower()} (got {got!r})"
    return f"{msg[0].lower()}{msg[1:]} (got {got!r})"


def _owner(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the last element of `loc` (to suggest its field names)."""
    cls: Any = root
    for part in loc[:-1]:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        field = cls.model_fields.get(str(part))
        if field is None:  # a dict key or list index: look inside the container's value type
            continue
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        cls = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _first_error(e: ValidationError, root: type[BaseModel], prefix: str = "",
                 path: str | Path | None = None) -> ParamsError:
    # unknown keys first: a misspelt section or key also shows up as a missing one
    err = sorted(e.errors(include_url=False), key=lambda x: x["type"] != "extra_forbidden")[0]
    loc = tuple(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" and msg.startswith("@"):  # a model validator naming its key (_at)
        sub, _, msg = msg[1:].partition(": ")
        loc, err = loc + (sub,), {**err, "msg": msg}
    key = ".".join(((prefix,) if prefix else ()) + loc)
    return ParamsError(key, _describe(err, key, _owner(root, loc)), path=path)


class Sections:
    """Some validated sections of a params file (`load_params(path, sections=...)`)."""

    def __init__(self, sections: dict[str, Section]):
        self.__dict__.update(sections)

    def model_dump(self) -> dict[str, Any]:
        return {k: v.model_dump() for k, v in self.__dict__.items()}


def load_params(path: str | Path | None = None, sections: Iterable[str] | None = None) -> Params:
    """Read and validate params.yaml (the project's, or `path`). Raises ParamsError.

    `sections`: validate only these (absent ones get their defaults) and ignore the rest of the file — for
    commands that need a few sections of a small file of their own (`vad eval --params`)."""
    p = Path(path) if path else project_root() / PARAMS_FILE
    try:
        with p.open(encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ParamsError("", "not found", path=p, line=0) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ParamsError("", f"not valid YAML: {getattr(e, 'problem', e)}", path=p,
                          line=mark.line + 1 if mark else 0) from None
    if not isinstance(raw, dict):
        raise ParamsError("", "must be a mapping of sections", path=p, line=0)
    if sections is not None:
        out = {}
        for s in sections:
            try:
                out[s] = SECTIONS[s].model_validate(raw.get(s) or {})
            except ValidationError as e:
                err = _first_error(e, SECTIONS[s], prefix=s, path=path or PARAMS_FILE)
                err.line = _line_of(p, err.key)
                raise err from None
        return Sections(out)  # type: ignore[return-value]
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        err = _first_error(e, Params, path=path or PARAMS_FILE)
        err.line = _line_of(p, err.key)
        raise err from None


def _line_of(path: Path, dotted: str) -> int | None:
    """1-based line of a dotted key in a YAML file (the deepest part that exists), or None."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for part in dotted.split("."):
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == part), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


# --- what a stage may read ------------------------------------------------------------------------------------
class UndeclaredParam(AttributeError):
    pass


class SectionView:
    """A section restricted to the keys a stage declares; reading any other key is a programming error."""

    def __init__(self, section: Section, keys: frozenset[str] | None, stage: str):
        object.__setattr__(self, "_section", section)
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_stage", stage)

    def __getattr__(self, name: str) -> Any:
        keys = object.__getattribute__(self, "_keys")
        section = object.__getattribute__(self, "_section")
        if keys is not None and name in type(section).model_fields and name not in keys:
            raise UndeclaredParam(f"stage {object.__getattribute__(self, '_stage')} reads {section.section}.{name} "
                                  "but does not declare it in its STAGE.params (so DVC would not rerun it)")
        return getattr(section, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("params are read-only")

    def model_dump(self, **kw: Any) -> dict[str, Any]:
        d = self._section.model_dump(**kw)
        keys = object.__getattribute__(self, "_keys")
        return d if keys is None else {k: v for k, v in d.items() if k in keys}

    def __repr__(self) -> str:
        return f"SectionView({self._section!r}, keys={sorted(self._keys) if self._keys else 'all'})"


class ParamsView:
    """The params a stage declared (`STAGE.params`: whole sections or `section.key`)."""

    def __init__(self, params: Params, declared: Iterable[str], stage: str = ""):
        wanted: dict[str, set[str] | None] = {}
        for d in declared:
            sec, _, key = d.partition(".")
            if sec not in SECTIONS:
                raise ValueError(f"stage {stage}: declared param section {sec!r} does not exist")
            if key and key not in SECTIONS[sec].model_fields:
                raise ValueError(f"stage {stage}: declared param {d!r} does not exist")
            if not key:
                wanted[sec] = None
            elif wanted.get(sec, set()) is not None:
                wanted.setdefault(sec, set()).add(key)
        self._params, self._stage = params, stage
        self._views = {sec: SectionView(getattr(params, sec), None if keys is None else frozenset(keys), stage)
                       for sec, keys in wanted.items()}

    def __getattr__(self, name: str) -> SectionView:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._views:
            raise UndeclaredParam(f"stage {self._stage} reads the params section {name!r} but does not declare it "
                                  "in its STAGE.params (so DVC would not rerun it)")
        return self._views[name]

    def model_dump(self) -> dict[str, Any]:
        return {sec: v.model_dump() for sec, v in self._views.items()}
