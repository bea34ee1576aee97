"""Pydantic v2 request and response bodies of the HTTP API (the OpenAPI schema at /docs is generated from these).

Why these limits: requests are rejected at the door for wrong types, NaN/inf, negative or absurd counts and unknown
fields, so the predictor only sees well-formed values; what only the domain can judge (is `Swahilli` a language? is
`telepathy` a task?) is left to the predictor, whose XltError becomes a 422 with suggestions.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_EXAMPLES = 100_000_000  # same bound as features.queries.MAX_EXAMPLES (not imported: schemas stay import-light)
MAX_K = 1_000_000
MAX_CANDIDATES = 1000
Text = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0, le=MAX_EXAMPLES)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="null")


# ------------------------------------------------------------------------------------------------ requests
class TaskQuery(_In):
    model: Text = Field(description="Model id or alias, e.g. `xlm-r-large`, `mT5-Base`, `XLMR`",
                        examples=["xlm-r-large"])
    task: Text = Field(description="Task id or alias (`xnli`, `PAN-X`…); an unknown task needs `task_type`",
                       examples=["xnli"])
    task_type: Text | None = Field(None, description="classification | pos | ner | qa | parsing | mt | el")
    target: Text = Field(description="Target language: ISO 639-1/2/3, BCP-47, Flores-200 or English name",
                         examples=["sw"])


class Query(TaskQuery):
    """One (model, task, training mix, target) question: a single `source` or a `train_config` mixture."""

    source: Text | None = Field(None, description="Single source language", examples=["en"])
    source_size: Annotated[int, Field(ge=1, le=MAX_EXAMPLES)] | None = Field(
        None, description="Source examples (default: the task's usual English training-set size)")
    train_config: Annotated[str, Field(min_length=1, max_length=4000)] | None = Field(
        None, description="Mixture `lang:n;lang:n`; a count for the target is k", examples=["en:1000;de:500"])
    k: Annotated[int, Field(ge=0, le=MAX_K)] | None = Field(None, description="Target-language examples added")

    @model_validator(mode="after")
    def _one_source(self):
        if self.source is None and self.train_config is None:
            raise ValueError("give a source language (`source`) or a mixture (`train_config`, 'lang:n;lang:n')")
        if self.source is not None and self.train_config is not None:
            raise ValueError("give either `source` or `train_config`, not both")
        if self.source_size is not None and self.source is None:
            raise ValueError("`source_size` goes with `source` (a mixture carries its own counts)")
        return self

    def as_query(self) -> dict:
        return self.model_dump(exclude_none=True)


class RankRequest(TaskQuery):
    """Rank candidate source languages for a target."""

    candidates: Annotated[list[Text], Field(min_length=1, max_length=MAX_CANDIDATES)] | None = Field(
        None, description="Source languages to rank (default: every language of the model's pretraining corpus)")
    source: Text | None = Field(None, description="Your current source, if any: it is added to the candidates so "
                                                  "you see where it ranks")
    source_size: Annotated[int, Field(ge=1, le=MAX_EXAMPLES)] | None = Field(
        None, description="Examples per candidate source (default: the task's usual training-set size)")
    candidate_sizes: Literal["assumed", "published"] = Field(
        "assumed", description="'assumed': every candidate at `source_size` (compares languages); 'published': each "
                               "candidate at its own training-set size for this task where xlt holds one (TyDiQA, UD "
                               "POS, WikiANN), `source_size` elsewhere (compares the datasets that exist)")
    k: Annotated[int, Field(ge=0, le=MAX_K)] | None = None
    top: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] | None = Field(None, description="Return only the best N")
    reasons: Annotated[int, Field(ge=0, le=10)] = Field(3, description="SHAP reasons per source")

    def as_query(self) -> dict:
        return self.model_dump(exclude_none=True, exclude={"candidates", "top", "reasons", "source"})


class CurveRequest(Query):
    ks: Annotated[list[Annotated[int, Field(ge=0, le=MAX_K)]], Field(min_length=2, max_length=200)] | None = Field(
        None, description="Values of k (default 0, 10, 20, 50 … 10000)")
    target_score: Annotated[float, Field(ge=0, le=100)] | None = Field(
        None, description="Score to reach: the answer gives the k needed")

    def as_query(self) -> dict:
        return self.model_dump(exclude_none=True, exclude={"ks", "target_score"})


class PlanRequest(_In):
    model: Text = Field(examples=["xlm-r-large"])
    task: Text = Field(examples=["xnli"])
    task_type: Text | None = None
    target: Text | Annotated[list[Text], Field(min_length=1, max_length=10)] = Field(
        description="One target language or a list of them (the mean predicted score is maximised)", examples=["sw"])
    candidates: Annotated[list[Text], Field(min_length=1, max_length=50)] = Field(
        description="Languages you could annotate (the target is always included)", examples=[["en", "ar", "hi"]])
    budget: Annotated[int, Field(ge=1, le=10_000_000)] = Field(description="Examples you can afford in total",
                                                                examples=[1000])
    steps: Annotated[int, Field(ge=1, le=100)] = Field(20, description="Granularity: budget is spent in this many "
                                                                       "equal parts")
    train_config: Text | None = Field(None, description="The mix you already own ('en:1000;sw:50'); the plan adds "
                                                        "to it", examples=["en:5000"])
    costs: dict[Text, Annotated[float, Field(gt=0, le=1e6)]] | None = Field(
        None, max_length=60, description="Cost units per example per language (default 1 each); the budget is in "
                                         "these units", examples=[{"sw": 3.0}])


# ------------------------------------------------------------------------------------------------ responses
class QueryEcho(_Out):
    model: str
    task: str
    task_type: str
    target: str
    train_config: str
    k: int


class Yardstick(_Out):
    source: str
    predicted_score: float


class PredictResponse(_Out):
    predicted_score: float = Field(description="Predicted score, 0–100")
    lower80: float
    upper80: float
    lower90: float
    upper90: float
    query: QueryEcho
    regime: str | None = Field(None, description="'record': published results exist for this target on this task "
                                                 "with this model's family (intervals calibrated on seen targets); "
                                                 "'similarity': they do not (only typology, sizes and other families' "
                                                 "results speak; wider intervals)")
    notes: list[str] = Field(default_factory=list, description="Assumptions made, e.g. a model size assumed")
    yardsticks: dict[str, Yardstick | None] = Field(
        description="Same query from always-English and from the syntactically closest source")


class Reason(_Out):
    feature: str
    value: float | None
    contribution: float
    text: str = Field(description="In words, e.g. 'syntactic distance to the target 0.42: +4.1'")


class RankedSource(_Out):
    rank: int
    source: str
    name: str
    score: float
    lower80: float
    upper80: float
    lower90: float
    upper90: float
    p_best: float = Field(description="Probability that this source is the best of the candidates")
    source_size: int | None = Field(None, description="Examples of this source the score assumes")
    size_published: bool | None = Field(None, description="Whether `source_size` is this source's published "
                                                          "training-set size for the task (candidate_sizes="
                                                          "'published'), not an assumed one")
    in_best_set: bool | None = Field(None, description="In the 90% best-source set: the truly best source is in "
                                                       "this set in >= 90% of held-out targets, with 90% confidence (conformal, "
                                                       "per regime)")
    reasons: list[Reason] | None = Field(
        None, description="Top SHAP reasons in words; null where the predictor did not compute them (it explains "
                          "the leading sources only, to keep /rank fast)")


class RankResponse(_Out):
    sources: list[RankedSource]
    model: str
    task: str
    target: str
    k: int | None = None
    n_candidates: int | None = Field(None, description="How many candidates were ranked (null when `top` cut the list)")
    regime: str | None = Field(None, description="'record' or 'similarity' (see /predict)")
    candidate_sizes: str | None = Field(None, description="How the candidates were sized (see the request)")


class CurvePoint(_Out):
    k: int
    score: float
    lower80: float | None = None
    upper80: float | None = None
    lower90: float | None = None
    upper90: float | None = None


class CurveResponse(_Out):
    points: list[CurvePoint]
    a: float = Field(description="score(k) ≈ a + b·ln(1+k)")
    b: float
    r2: float
    target_score: float | None = None
    k_to_reach: int | None = Field(None, description="Smallest k reaching target_score (null: out of reach)")
    query: QueryEcho


class Contribution(_Out):
    feature: str
    label: str
    value: float | None
    shap: float


class ExplainResponse(_Out):
    base_value: float
    prediction: float = Field(description="Model output: base_value + sum of contributions (before clipping)")
    predicted_score: float
    contributions: list[Contribution] = Field(description="One SHAP value per feature, largest |shap| first; plus "
                                              "`record_residual` (the published record's offset for this model, task and "
                                              "target: see README) where the record has one, and `source_record` (the "
                                              "source's offset from the task's other targets) where the target is "
                                              "unseen, or `pair_record` (what the model still misses on this "
                                              "published source → target pair) where the record holds the target; "
                                              "`size_step` (value: doublings of parameters) for a model size the "
                                              "record holds no result of, scored as its family's nearest held size")
    reasons: list[Reason]
    query: QueryEcho


class PlanItem(_Out):
    language: str
    name: str
    examples: int


class NextExamples(_Out):
    language: str
    name: str
    gain: float = Field(description="Predicted score gain of 100 more examples of this language on top of the plan")


class PlanResponse(_Out):
    plan: list[PlanItem]
    budget: int
    targets: list[str]
    predicted_score: float
    english_only_score: float
    gain_over_english: float
    start_score: float | None = Field(None, description="Predicted score of the mix you already own (train_config)")
    spent: float | None = Field(None, description="Cost units the plan spends")
    next_100: list[NextExamples] = Field(default_factory=list, description="What 100 more examples buy, per language")


class LanguageOut(_Out):
    code: str
    name: str
    script: str
    iso1: str | None = None


class ModelOut(_Out):
    id: str
    family: str
    n_params: float | None
    corpus: str
    aliases: list[str]
    n_corpus_languages: int


class TaskOut(_Out):
    id: str
    task_type: str
    metric: str
    train_size: int | None
    aliases: list[str]


class TasksResponse(_Out):
    tasks: list[TaskOut]
    task_types: list[str]


class Health(_Out):
    status: str
    model_version: str | None = None
    n_features: int | None = None


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    suggestions: list[str] = []


class ErrorResponse(BaseModel):
    detail: list[ErrorItem] | str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Bad input: field path, message and suggestions"},
    503: {"model": ErrorResponse, "description": "Model not loaded or not valid"},
}
