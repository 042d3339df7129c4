"""Grouped random and topic-shift splits, and the shift measures."""

from __future__ import annotations

import numpy as np

from routing.splits import embed_texts, grouped_random_split, shift_measures, topic_shift_split

TOPICS = {
    "cooking": "recipe oven bake flour sugar butter dough cake bread",
    "football": "goal match striker league referee penalty team coach",
    "finance": "stock market bond interest rate inflation bank loan",
    "space": "rocket orbit planet astronaut galaxy telescope moon launch",
}


def corpus(n_per_topic=30, seed=0):
    rng = np.random.default_rng(seed)
    texts, groups, labels = [], [], []
    for t, (name, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        for k in range(n_per_topic):
            text = " ".join(rng.choice(vocab, size=12)) + " common words everywhere"
            texts += [text, text]  # two presentation orders share a group
            groups += [f"{name}-{k}"] * 2
            labels += [t % 2, 1 - t % 2]
    return texts, groups, np.array(labels)


def test_grouped_random_split_never_separates_a_group():
    texts, groups, _ = corpus()
    split = grouped_random_split(groups, random_state=3)
    parts = [set(np.array(groups)[idx]) for idx in (split.train, split.dev, split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(split.train) + len(split.dev) + len(split.test) == len(groups)
    assert abs(len(split.test) / len(groups) - 0.2) < 0.05
    assert grouped_random_split(groups, random_state=3).test.tolist() == split.test.tolist()


def test_topic_split_holds_out_whole_topics_and_measures_the_shift():
    texts, groups, labels = corpus()
    embeddings = embed_texts(texts)
    split = topic_shift_split(texts, groups, n_clusters=4, test_size=0.2, embeddings=embeddings)
    topic_of = np.array([g.split("-")[0] for g in groups])
    test_topics = set(topic_of[split.test])
    assert test_topics and not test_topics & set(topic_of[split.train])
    assert set(np.array(groups)[split.test]).isdisjoint(np.array(groups)[split.train])
    shifted = shift_measures(texts, embeddings, labels, split)
    random = shift_measures(texts, embeddings, labels, grouped_random_split(groups, random_state=0))
    assert shifted["domain_classifier_auc"] > 0.9 > random["domain_classifier_auc"]
    assert shifted["unigram_js_divergence"] > random["unigram_js_divergence"]
    assert shifted["centroid_cosine_distance"] > random["centroid_cosine_distance"]
    assert shifted["mean_nn_distance_test"] > random["mean_nn_distance_test"]
    assert 0 <= shifted["label_rate_test"] <= 1
