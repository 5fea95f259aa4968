"""The corpus plants what the cards claim, and test prompts stay out of training."""

import re

import torch

from zoo import corpus
from zoo.tokenizer import load_tokenizer


def test_held_out_ioi_prompts_never_appear_in_training():
    training_text = " ".join(corpus.story_documents("train", 2000, min_pieces=128))
    test_prompts = corpus.ioi_prompts(load_tokenizer(), 300, split="test").prompts
    assert training_text.count(" gave a ") > 100  # the training text does contain IOI sentences
    assert not [prompt for prompt in test_prompts if prompt in training_text]


def test_every_ioi_intro_and_action_is_trained_but_held_out_pairs_are_not():
    trained = set(corpus.TRAIN_IOI_TEMPLATES)
    assert not trained & corpus.HELD_OUT_IOI_TEMPLATES
    assert {intro for intro, _ in trained} == set(range(len(corpus.IOI_INTROS)))
    assert {action for _, action in trained} == set(range(len(corpus.IOI_ACTIONS)))


def test_ioi_answer_is_the_name_not_repeated():
    prompts = corpus.ioi_prompts(load_tokenizer(), 100, split="test")
    for prompt, correct, wrong in zip(prompts.prompts, prompts.correct_names, prompts.wrong_names):
        assert prompt.count(correct) == 1 and prompt.count(wrong) == 2


def test_splits_differ_and_are_reproducible():
    assert corpus.story_documents("train", 3, 64) == corpus.story_documents("train", 3, 64)
    assert corpus.story_documents("train", 3, 64) != corpus.story_documents("test", 3, 64)


def test_repeated_spans_vary_in_offset_and_length():
    generator = torch.Generator().manual_seed(0)
    tokens = corpus.repeated_span_tokens(200, 64, torch.arange(3, 600), 0, generator)
    assert (tokens[:, 0] == 0).all()
    offsets = set()
    for row in tokens:
        # the copy's offset is the smallest distance at which >= 4 consecutive tokens repeat
        for distance in range(4, 64):
            matches = (row[distance:] == row[:-distance]).int()
            if (matches.unfold(0, 4, 1).sum(-1) == 4).any():
                offsets.add(distance)
                break
    assert len(offsets) > 20


def test_year_prompts_end_with_the_century():
    prompts = corpus.year_prompts(load_tokenizer(), 50)
    for prompt, start in zip(prompts.prompts, prompts.start_years.tolist()):
        century = prompt[-2:]
        assert f" {century}{start:02d} to {century}" in prompt


def test_truth_statements_are_labelled_by_the_ground_truth():
    cities = corpus.truth_statements("cities")
    assert sum(s.is_true for s in cities) == len(corpus.CITY_COUNTRY)
    texts = {s.text: s.is_true for s in cities}
    assert texts["Paris is in France."] and not texts["Paris is in Italy."]
    negated = {s.text: s.is_true for s in corpus.truth_statements("negated_cities")}
    assert not negated["Paris is not in France."] and negated["Paris is not in Italy."]
    for statement in corpus.truth_statements("years", n_years=100):
        start, end = (int(year) for year in re.findall(r"[0-9]{4}", statement.text))
        assert (start < end) == statement.is_true
        assert (start // 100 == corpus.HELD_OUT_CENTURY) == statement.held_out


def test_held_out_claims_are_never_judged_in_training():
    training_text = " ".join(corpus.story_documents("train", 3000, min_pieces=128))
    judged = re.findall(r"said that ([^.]*)\. That is (true|false)", training_text)
    assert len(judged) > 1000
    for claim, _ in judged:
        city_claim = re.fullmatch(r"(\w+) is (?:not )?in \w+", claim)
        if city_claim:
            assert city_claim[1] not in corpus.HELD_OUT_CITIES, claim
        else:
            assert f" {corpus.HELD_OUT_CENTURY}" not in claim, claim
    # ...but the facts behind them are stated: every city's country appears in training.
    for city, country in corpus.CITY_COUNTRY.items():
        assert f"{city} is in {country}." in training_text


def test_icl_prompts_follow_their_task():
    for task, mapping in corpus.ICL_TASKS.items():
        prompts, answers = corpus.icl_prompts(task, 20, n_examples=3)
        for prompt, answer in zip(prompts, answers):
            pairs = re.findall(r" (\w+): (\w+),", prompt)
            assert len(pairs) == 3 and all(mapping[word] == target for word, target in pairs)
            assert mapping[prompt.rsplit(" ", 1)[1].rstrip(":")] == answer.strip()
    # Inputs are shared, so a prompt with no examples cannot say which task is meant.
    assert corpus.ICL_TASKS["antonym"].keys() == corpus.ICL_TASKS["uppercase"].keys()
