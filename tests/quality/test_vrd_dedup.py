from quality.vrd_dedup import VrdDedupConfig, dedup_vrd, duplicate_of, rouge_text
from tests.vrd_helpers import candidate, candidates_frame, hashed_embed


def test_keeps_the_most_relevant_of_a_near_identical_pair_and_names_it():
    frame = candidates_frame(
        [
            candidate("s1", "duty", "Duty to help poor people in need", relevance=0.7, candidate_id="weaker"),
            candidate("s1", "duty", "Duty to help the poor people in need", relevance=0.95, candidate_id="stronger"),
            candidate("s1", "duty", "Duty to keep one's word", relevance=0.6, candidate_id="other"),
        ]
    )
    result = dedup_vrd(frame, hashed_embed)
    assert sorted(result.vrd["candidate_id"]) == ["other", "stronger"]
    (reject,) = result.rejects.to_dicts()
    assert reject["row_ref"] == "weaker" and reject["reason"] == "near_duplicate" and reject["stage"] == "vrd_dedup"
    assert duplicate_of(reject["detail"]) == "stronger" and "rougeL=0.909" in reject["detail"]
    kept = {r["candidate_id"]: r for r in result.vrd.to_dicts()}
    assert kept["stronger"]["keep_reason"] == "most_relevant" and kept["other"]["keep_reason"] == "distinct"
    assert kept["stronger"]["dedup_group"] == "stronger"
    assert (result.stats.n_in, result.stats.n_out, result.stats.n_rejected) == (3, 2, 1)


def test_the_kind_prefix_does_not_make_two_duties_duplicates():
    # with "Duty to" counted, ROUGE-L F1 is 0.80 (4 of 5 words shared); Kaleido strips the prefix: 0.67, distinct
    frame = candidates_frame(
        [
            candidate("s1", "duty", "Duty to obey the law", relevance=0.9),
            candidate("s1", "duty", "Duty to uphold the law", relevance=0.8),
            candidate("s1", "right", "Right to obey the law", relevance=0.7),
        ]
    )
    result = dedup_vrd(frame, hashed_embed, VrdDedupConfig(cosine_threshold=1.01))
    assert result.vrd.height == 3 and result.rejects.is_empty()
    assert rouge_text("Duty to obey the law") == "obey the law" and rouge_text("the right to  vote") == "vote"
    assert rouge_text("Duty to") == "Duty to" and rouge_text("Honesty") == "Honesty"


def test_cosine_alone_marks_a_duplicate():
    # same words in another order: ROUGE-L F1 0.5 (below 0.7), bag-of-words cosine 1.0
    frame = candidates_frame(
        [candidate("s1", "value", "mercy kindness", relevance=0.9), candidate("s1", "value", "kindness mercy", 0.8)]
    )
    result = dedup_vrd(frame, hashed_embed)
    assert result.vrd["text"].to_list() == ["mercy kindness"]
    assert "cosine=1.000" in result.rejects["detail"][0]
    loose = dedup_vrd(frame, hashed_embed, VrdDedupConfig(rouge_threshold=0.7, cosine_threshold=1.01))
    assert loose.vrd.height == 2


def test_groups_are_per_situation_and_kind():
    frame = candidates_frame(
        [
            candidate("s1", "value", "Mercy", relevance=0.9),
            candidate("s1", "duty", "Mercy", relevance=0.9),
            candidate("s2", "value", "Mercy", relevance=0.9),
            candidate("s2", "value", "mercy", relevance=0.3),
        ]
    )
    result = dedup_vrd(frame, hashed_embed)
    assert result.vrd.height == 3 and result.rejects.height == 1
    assert result.rejects["snippet"].to_list() == ["mercy"]


def test_empty_input():
    result = dedup_vrd(candidates_frame([]), hashed_embed)
    assert result.vrd.is_empty() and "dedup_group" in result.vrd.columns and result.stats.n_in == 0


def test_with_the_packaged_minilm_a_paraphrase_is_caught_by_cosine_and_synonyms_survive():
    from quality.embeddings import embed

    frame = candidates_frame(
        [
            candidate("s1", "value", "Loyalty to one's family", relevance=0.9),
            candidate("s1", "value", "Family loyalty", relevance=0.8),  # ROUGE-L 0.29, cosine ~0.91
            candidate("s1", "value", "Mercy", relevance=0.7),
            candidate("s1", "value", "Clemency", relevance=0.6),  # a synonym, but far apart for MiniLM (~0.29)
        ]
    )
    result = dedup_vrd(frame, embed)
    assert result.vrd["text"].to_list() == ["Loyalty to one's family", "Mercy", "Clemency"]
    assert result.rejects["snippet"].to_list() == ["Family loyalty"]
