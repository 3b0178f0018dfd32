"""The one settings object: resolution order, clear errors, and stage configs derived from it."""

import pydantic
import pytest

from assets.teacher import generation_config, passage_config
from quality.dedup.documents import minhash_config
from quality.dedup.minhash import MinHashConfig
from sources.settings import DedupSettings, Settings, config_from


def test_later_sources_win_defaults_then_toml_then_env_then_overrides(tmp_path):
    (tmp_path / "chronoprism.toml").write_text('[dedup]\nbands = 10\nrows = 4\n[teacher]\nbackend = "scripted"\n')
    environ = {"CHRONOPRISM_HOME": str(tmp_path), "CHRONOPRISM__DEDUP__ROWS": "5", "CHRONOPRISM__TEACHER__MODEL": "m"}
    settings = Settings.load({"dedup.rows": 6}, environ=environ)
    assert settings.home_path == tmp_path.resolve()
    assert (settings.dedup.bands, settings.dedup.rows) == (10, 6)  # TOML, then env 5, then the override 6
    assert (settings.teacher.backend, settings.teacher.model) == ("scripted", "m")
    assert settings.dedup.ngram == DedupSettings().ngram  # untouched fields keep their defaults


def test_a_missing_config_file_and_an_unknown_field_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="CHRONOPRISM_CONFIG"):
        Settings.load(environ={"CHRONOPRISM_CONFIG": str(tmp_path / "absent.toml")})
    with pytest.raises(pydantic.ValidationError, match="bandz"):
        Settings.load({"dedup.bandz": 3}, environ={"CHRONOPRISM_HOME": str(tmp_path)})


def test_config_from_copies_same_named_fields_and_takes_renamed_ones():
    section = DedupSettings(bands=7, rows=3, jaccard_threshold=None)
    assert config_from(MinHashConfig, section) == MinHashConfig(
        ngram=5, bands=7, rows=3, seed=1, jaccard_threshold=None, max_bucket_pairs=32
    )
    assert config_from(MinHashConfig, section, rows=9).rows == 9  # an explicit value wins
    assert minhash_config(section).num_perm == 21


def test_stage_configs_follow_the_teacher_settings_they_are_named_after(tmp_path):
    overrides = {
        "teacher.passage_chars": 321,
        "teacher.passages_per_century": 2,
        "teacher.max_new_tokens": 77,
        "teacher.max_situations_per_century": 5,
        "teacher.seed": 4,
    }
    settings = Settings.load(overrides, environ={"CHRONOPRISM_HOME": str(tmp_path)})
    passages = passage_config(settings)
    assert (passages.target_chars, passages.per_century, passages.seed) == (321, 2, 4)
    generation = generation_config(settings)
    assert (generation.vrd_max_new_tokens, generation.max_situations, generation.seed) == (77, 5, 4)
