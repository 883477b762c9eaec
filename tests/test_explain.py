"""Explanations of the LM encoder's scores (``recsim_llm.lm.explain``, ``recsim-llm explain``)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from recsim_llm.lm import explain as ex
from recsim_llm.lm.model import fast_states_numpy


def _toy_head(d: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "gate": rng.normal(size=(3, d)).astype(np.float32),
        "decay": np.float32(0.7),
        "w_profile_t": rng.normal(size=(d, d)).astype(np.float32),
        "w_history_t": rng.normal(size=(d, d)).astype(np.float32),
        "bias": rng.normal(size=d).astype(np.float32),
    }


def _reference_score(head, p, e, types, ages, v) -> float:
    """The score by ``fast_states_numpy`` (the evaluation's formula), independent of explain."""
    full = {
        "gate": head["gate"],
        "decay": head["decay"],
        "w_profile": head["w_profile_t"].T,
        "w_history": head["w_history_t"].T,
        "bias": head["bias"],
    }
    mask = np.ones((1, len(types)), dtype=bool)
    u = fast_states_numpy(full, p[None], e[None], types[None], ages[None], mask)[0]
    return float(u @ v)


def test_parts_sum_to_the_score_and_match_the_fast_head():
    rng = np.random.default_rng(1)
    head = _toy_head(6)
    p, v = rng.normal(size=6), rng.normal(size=6)
    e = rng.normal(size=(9, 6))
    types = rng.integers(0, 3, 9)
    ages = rng.integers(0, 5, 9)
    score, prof, bias, parts, older = ex.decompose(head, p, e, types, ages, v)
    assert older == 0.0
    assert prof + bias + parts.sum() == pytest.approx(score, abs=1e-12)
    assert score == pytest.approx(_reference_score(head, p, e, types, ages, v), abs=1e-5)
    # fast_score (the removal test's scorer) agrees, and dropping nothing changes nothing.
    assert ex.fast_score(head, p, e, types, ages, v[None])[0] == pytest.approx(score, abs=1e-12)
    keep = np.ones(9, bool)
    keep[3] = False
    dropped = ex.fast_score(head, p, e, types, ages, v[None], keep)[0]
    assert dropped == pytest.approx(
        _reference_score(head, p, e[keep], types[keep], ages[keep], v), abs=1e-5
    )


def test_older_history_term_closes_the_sum_when_the_state_holds_more():
    rng = np.random.default_rng(2)
    head = _toy_head(5, seed=3)
    p, v = rng.normal(size=5), rng.normal(size=5)
    e = rng.normal(size=(4, 5))
    types, ages = np.array([0, 1, 2, 2]), np.array([0, 0, 1, 2])
    older_acc, older_w = rng.normal(size=5), 0.4  # events beyond the named ones
    decay = float(head["decay"])
    w = (decay ** ages.astype(float)).sum() + older_w
    acc = (decay ** ages.astype(float))[:, None] * head["gate"][types].astype(float) * e
    pooled = (acc.sum(0) + older_acc) / max(w, 1.0)
    score, prof, bias, parts, older = ex.decompose(head, p, e, types, ages, v, w, pooled)
    assert abs(older) > 1e-6
    assert prof + bias + parts.sum() + older == pytest.approx(score, abs=1e-12)
    full = ex.fast_score(
        head, p, e, types, ages, v[None], older_acc=older_acc, older_weight=older_w
    )
    assert full[0] == pytest.approx(score, abs=1e-12)


class _StubBundle:
    """A bundle with a given head and fixed embeddings per text (no LM)."""

    def __init__(self, head, vectors: dict[str, np.ndarray]) -> None:
        self.head = head
        self.dim = head["bias"].size
        self.vectors = vectors
        self.config = {"history_steps": 20}
        self.path = "stub"
        self.lm = None  # no item bias, no words

    def item_embeddings(self, texts):
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)

    def profile_embeddings(self, texts):
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def _toy_explainer(d: int = 4) -> tuple[ex.Explainer, list[ex.HistoryEvent]]:
    """Identity head: the score is the cosine of (profile + pooled history) with the item."""
    head = {
        "gate": np.ones((3, d), np.float32),
        "decay": np.float32(0.9),
        "w_profile_t": 0.1 * np.eye(d, dtype=np.float32),
        "w_history_t": np.eye(d, dtype=np.float32),
        "bias": np.zeros(d, np.float32),
    }
    basis = np.eye(d, dtype=np.float32)
    vectors = {
        "profile": 0.5 * basis[3],
        "item": basis[0],
        "match": 3.0 * basis[0],  # the one event aligned with the item: it must dominate
        "off-1": basis[1] - 0.2 * basis[0],
        "off-2": basis[2] + 1.0 * basis[0],
        "off-3": -0.3 * basis[0] + basis[1],
    }
    events = [
        ex.HistoryEvent("Off one", "off-1", False, None, 0, 11),
        ex.HistoryEvent("The match", "match", True, 5.0, 1, 12),
        ex.HistoryEvent("Off two", "off-2", True, 2.0, 0, 13),
        ex.HistoryEvent("Off three", "off-3", False, None, 2, 14),
    ]
    return ex.Explainer(bundle=_StubBundle(head, vectors)), events


def test_dominant_event_is_ranked_first_and_named_in_the_sentence():
    model, events = _toy_explainer()
    out = ex.explain(model, "profile", events, "item", "The item", 7, word_method="none")
    assert out.history[0].title == "The match" and out.history[0].item_id == 12
    assert out.history[0].response == "liked" and out.history[0].rating == 5.0
    weights = [h.weight for h in out.history]
    assert np.all(np.diff(np.abs(weights)) <= 0)  # ordered by absolute contribution
    assert any(w < 0 for w in weights)  # a negative event is kept, by |weight|
    assert out.parts_sum() == pytest.approx(out.score, abs=1e-9)
    assert out.sentence.startswith('Recommended because you watched "The match" (rated 5/5)')
    positive = [h.title for h in out.history if h.weight > 0]
    assert f'"{positive[1]}"' in out.sentence  # the second reason too
    assert out.words == () and out.item_bias == 0.0


def test_sentence_rendering_rules():
    h = [
        ex.EventWeight(1, "A", "skipped", None, 0, 0.02),
        ex.EventWeight(2, "B", "clicked", None, 1, -0.5),
        ex.EventWeight(3, "C", "clicked", 3.0, 1, 0.01),
    ]
    words = [ex.WordWeight("zeta", -0.3), ex.WordWeight("orbit", 0.2), ex.WordWeight("moon", 0.1)]
    s = ex.render_sentence(0.0, h, words)
    assert s == (
        'Recommended because you skipped "A" and you watched "C" (rated 3/5); '
        'its description mentions "orbit" and "moon".'
    )
    # The profile outweighs A ten times over: A (0.02 < 0.1 x 0.5) is not named.
    assert ex.render_sentence(0.5, h, []) == "Recommended because of your profile."
    assert ex.render_sentence(0.03, h, []) == (
        'Recommended because of your profile and you skipped "A".'
    )
    assert ex.render_sentence(-1.0, h[1:2], []) == (
        "Recommended with little support from your history."
    )


def test_word_helpers_delete_whole_words_only():
    text = "The ocean world. Genres: Documentary. A world about voyage and wolves, with oceans."
    assert ex.content_words(text) == ["ocean", "world", "documentary", "voyage", "wolves", "oceans"]
    assert ex.without_word(text, "world") == (
        "The ocean. Genres: Documentary. A about voyage and wolves, with oceans."
    )
    assert "oceans" in ex.without_word(text, "ocean")


def test_bad_inputs_are_refused_before_work():
    model, events = _toy_explainer()
    with pytest.raises(ValueError, match="word_method"):
        ex.explain(model, "profile", events, "item", word_method="shap")
    with pytest.raises(ValueError, match=r"history_events\[0\]"):
        ex.explain(model, "profile", ["watched X"], "item")
    bad = [ex.HistoryEvent("X", "match", True, 5.0, -1)]
    with pytest.raises(ValueError, match=r"history_events\[0\]\.age"):
        ex.explain(model, "profile", bad, "item")


# -- with a real (tiny) encoder -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from recsim_llm.lm.finetune import FinetuneConfig, finetune
    from recsim_llm.lm.logs import write_behaviour_logs
    from recsim_llm.lm.model import make_tiny_backbone

    root = tmp_path_factory.mktemp("explain")
    bert = make_tiny_backbone(root / "bert", seed=1)
    logs = write_behaviour_logs(root / "logs", n_users=16, n_steps=6, seed=0)
    cfg = FinetuneConfig(
        model_path=str(bert),
        epochs=1,
        max_train_rows=32,
        max_val_rows=16,
        batch_size=8,
        fast_rows=32,
        fast_epochs=30,
        user_max_length=64,
        item_max_length=32,
        proj_dim=8,
        threads=1,
    )
    enc = finetune(logs, root / "enc", cfg, progress=False)
    return SimpleNamespace(enc=enc, logs=logs)


def test_log_row_explanations_are_exact_and_words_are_leave_one_out(tiny):
    from recsim_llm.lm.logs import Histories, load_logs

    data = load_logs(tiny.logs)
    model = ex.Explainer(tiny.enc)
    row = int(np.flatnonzero(data.t == 4)[0])
    out = ex.explain_log_row(model, data, row)
    assert [e.item_id for e in out] == data.slates[row].tolist()
    # The score is the evaluation's fast-head score of that row.
    it, ty, ag, mk = Histories(data, 20).arrays(np.array([row]), 20 * data.slates.shape[1])
    prof = model.bundle.profile_embeddings([data.profiles[row]])
    vecs = model.item_vectors(data.item_texts)
    head = model.head
    full = {
        "gate": head["gate"],
        "decay": head["decay"],
        "w_profile": head["w_profile_t"].T,
        "w_history": head["w_history_t"].T,
        "bias": head["bias"],
    }
    u = fast_states_numpy(full, prof, vecs[it], ty, ag, mk)[0]
    for e in out:
        want = model.scale * float(u @ vecs[e.item_id]) + float(model.item_bias(vecs[e.item_id])[0])
        assert e.score == pytest.approx(want, abs=1e-4)
        assert e.parts_sum() == pytest.approx(e.score, abs=1e-6)
        assert len(e.history) == int(mk.sum()) > 0
        assert np.all(np.diff(np.abs([w.weight for w in e.words])) <= 0)
    # A word's weight is the score lost when it is deleted from the item text.
    first = out[0]
    top = first.words[0]
    text = data.item_texts[first.item_id]
    v_full, v_cut = model.lm.encode_items([text, ex.without_word(text, top.word)])
    b_full, b_cut = model.item_bias(np.stack([v_full, v_cut]))
    want = model.scale * float(u @ v_full - u @ v_cut) + float(b_full - b_cut)
    assert top.weight == pytest.approx(want, abs=1e-4)
    positive = [w.word for w in sorted(first.words, key=lambda w: -w.weight) if w.weight > 0]
    if positive:
        assert f'"{positive[0]}"' in first.sentence
    grad = ex.explain_log_row(model, data, row, [first.item_id], word_method="grad")[0]
    assert grad.word_method == "grad"
    assert {w.word for w in grad.words} == {w.word for w in first.words}
    assert any(abs(w.weight) > 0 for w in grad.words)


HIDDEN = ("interest", "satisfaction", "boredom", "appeal", "clickbait", "topic", "quality", "true_")
ROW_KEYS = {
    "position",
    "item",
    "title",
    "score",
    "profile_weight",
    "bias_weight",
    "older_history_weight",
    "top_history",
    "top_words",
    "word_method",
    "sentence",
}


def test_env_step_rows_match_the_state_and_read_no_hidden_world(tiny):
    from recsim_llm.config import EnvConfig
    from recsim_llm.envs.vector import SlateVectorEnv

    # history_length 3 < steps run: the state remembers events the log has dropped.
    config = EnvConfig(encoder_path=str(tiny.enc), horizon=40, history_length=3)
    env = SlateVectorEnv(num_envs=3, config=config)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        env.step(np.argsort(rng.random((3, config.n_candidates)), axis=1)[:, :5])
    sim = env.sim
    d = sim.encoder.dim
    slate = sim.candidates[1, :3].tolist()
    rows = ex.explain_step(sim, 1, slate, top_k=None)
    for row, item in zip(rows, slate, strict=True):
        assert set(row) == ROW_KEYS
        model = ex.Explainer(tiny.enc)
        vec = sim.item_embeddings[item]
        want = model.scale * float(sim.states[1, :d] @ vec) + float(model.item_bias(vec)[0])
        assert row["score"] == pytest.approx(want, abs=1e-4)
        total = (
            row["profile_weight"]
            + row["bias_weight"]
            + row["older_history_weight"]
            + sum(h["weight"] for h in row["top_history"])
        )
        assert total == pytest.approx(row["score"], abs=1e-5)
        assert len(row["top_history"]) == 3 * config.slate_size  # the log's 3 steps
    assert any(abs(r["older_history_weight"]) > 1e-6 for r in rows)
    dumped = json.dumps(rows)
    keys = {k for r in rows for h in r["top_history"] for k in h} | {
        k for r in rows for w in r["top_words"] for k in w
    }
    assert not [k for k in set(json.loads(dumped)[0]) | keys if any(h in k for h in HIDDEN)]
    # Changing the hidden world changes nothing in the explanation.
    world = sim.world
    world.interest[:] = rng.normal(size=world.interest.shape)
    world.satisfaction[:] = -5.0
    world.boredom[:] = 3.0
    assert json.dumps(ex.explain_step(sim, 1, slate, top_k=None)) == dumped


def test_env_step_refuses_a_non_decomposable_encoder(bow_config):
    from recsim_llm.envs.vector import SlateVectorEnv

    env = SlateVectorEnv(num_envs=2, config=bow_config)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="lm-fast state.*'bow'"):
        ex.explain_step(env.sim, 0)


def test_cli_prints_valid_json_and_text(tiny, capsys):
    from recsim_llm.cli import main

    common = ["explain", "--encoder", str(tiny.enc)]
    assert main([*common, "--logs", str(tiny.logs), "--user", "3", "--step", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "logs" and len(out["items"]) == 5
    for item in out["items"]:
        assert set(item) == ROW_KEYS and item["sentence"].startswith("Recommended")
        assert item["profile_weight"] + item["bias_weight"] + sum(
            h["weight"] for h in item["top_history"]
        ) == pytest.approx(item["score"], abs=1e-5)
    args = [*common, "--step", "2", "--users", "2", "--user", "1", "--rank", "2", "--words", "none"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("user 1, step 2 (scenario default, seed 0, policy random)")
    assert text.count("Recommended") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--encoder", "no/such/dir"], "--encoder: directory 'no/such/dir' does not exist"),
        (["--logs", "no/such/logs"], "--logs: directory 'no/such/logs' does not exist"),
        (["--users", "2", "--user", "2"], "--user must be a slot in [0, 1]"),
        (["--policy", "nope"], "nope"),
        (["--rank", "2", "--items", "1"], "--rank and --items exclude each other"),
    ],
)
def test_cli_refuses_bad_arguments_before_work(args, message, capsys, monkeypatch):
    from recsim_llm.cli import main

    def boom(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(ex.Explainer, "__init__", boom)
    assert main(["explain", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


def test_cli_names_a_missing_user_and_step(tiny, capsys):
    from recsim_llm.cli import main

    common = ["explain", "--encoder", str(tiny.enc), "--logs", str(tiny.logs)]
    assert main([*common, "--user", "999"]) == 2
    assert "--user: no user 999" in capsys.readouterr().err
    assert main([*common, "--user", "0", "--step", "99"]) == 2
    assert "--step: user 0 has steps 0..5" in capsys.readouterr().err
