"""The one registry style: the Registry class, and a toy added through every extension point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsim_llm.registry import Registry, load_entry_point


# -- the class ------------------------------------------------------------------------------------
def test_string_entry_points_resolve_lazily_and_once():
    reg: Registry[object] = Registry("widget")
    reg.register("json-dumps", "json:dumps")
    reg.register("module", "json")
    reg.register("direct", len)
    assert reg.names() == ["direct", "json-dumps", "module"]
    assert reg._loaded == {}  # nothing imported at registration
    assert reg.resolve("json-dumps") is json.dumps
    assert reg.resolve("module") is json
    assert reg.make("direct", [1, 2]) == 2
    assert reg.make("json-dumps", [1]) == "[1]"
    assert "direct" in reg and "nope" not in reg and len(reg) == 3
    assert list(reg) == reg.names()


def test_a_bad_entry_point_fails_when_resolved_not_when_registered():
    reg: Registry[object] = Registry("widget")
    reg.register("missing-module", "no_such_module_xyz:thing")
    reg.register("missing-attr", "json:no_such_attr")
    with pytest.raises(
        ValueError, match="widget 'missing-module'.*cannot import 'no_such_module_xyz'"
    ):
        reg.resolve("missing-module")
    with pytest.raises(ValueError, match="widget 'missing-attr'.*no attribute 'no_such_attr'"):
        reg.resolve("missing-attr")
    assert load_entry_point("os.path:join.__name__") == "join"


def test_errors_name_the_kind_and_list_the_names():
    reg: Registry[object] = Registry("widget")
    reg.register("a", "json:dumps")
    with pytest.raises(ValueError, match=r"widget must be one of \['a'\], got 'b'"):
        reg.resolve("b")
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", "json:loads")
    reg.register("a", "json:loads", overwrite=True)
    assert reg.resolve("a") is json.loads
    for bad in ("", "x:y", "x,y"):
        with pytest.raises(ValueError, match="widget name"):
            reg.register(bad, "json:dumps")
    with pytest.raises(ValueError, match="must look like"):
        reg.register("c", ":dumps")
    reg.unregister("a")
    assert reg.names() == []
    with pytest.raises(ValueError, match="widget must be one of"):
        reg.unregister("a")


# -- encoders -------------------------------------------------------------------------------------
class _ConstantEncoder:
    """A toy encoder: every item and user state is a constant vector."""

    name = "toy"
    item_dim = 3
    user_dim = 5

    def encode_items(self, texts):
        return np.full((len(texts), self.item_dim), 0.5, dtype=np.float32)

    def encode_profiles(self, texts):
        return np.full((len(texts), self.user_dim), 0.25, dtype=np.float32)

    def update(self, states, log, item_embeddings, titles):
        states += 0.0


def make_toy_encoder(config, catalog):
    return _ConstantEncoder()


def test_a_toy_encoder_registered_by_entry_point_is_used_by_the_env():
    from recsim_llm.config import EnvConfig
    from recsim_llm.encoders import ENCODERS, encoder_names
    from recsim_llm.envs import SlateEnv

    ENCODERS.register("toy", f"{__name__}:make_toy_encoder")
    try:
        assert "toy" in encoder_names()
        env = SlateEnv(config=EnvConfig(encoder="toy", horizon=5))
        obs, _ = env.reset(seed=0)
        config = env.unwrapped.config if hasattr(env, "unwrapped") else env.config
        assert obs["user"].shape == (5 + 6,)
        assert obs["candidates"].shape == (config.n_candidates, 3 + 2)
        assert np.allclose(obs["user"][:5], 0.25)
    finally:
        ENCODERS.unregister("toy")
    with pytest.raises(ValueError, match="encoder must be one of .*, got 'toy'"):
        SlateEnv(config=EnvConfig(encoder="toy"))


def test_lm_encoders_are_registered_without_importing_torch():
    import subprocess
    import sys

    code = (
        "import sys; from recsim_llm.encoders import encoder_names; "
        "assert {'bow', 'lm-fast', 'lm-exact'} <= set(encoder_names()); "
        "assert 'torch' not in sys.modules and 'recsim_llm.lm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- scenarios ------------------------------------------------------------------------------------
def toy_scenario():
    from recsim_llm.config import EnvConfig

    return EnvConfig(encoder="bow", horizon=7, slate_size=2)


def test_a_toy_scenario_is_used_by_simulate(tmp_path, capsys):
    from recsim_llm.cli import main
    from recsim_llm.results import read_results
    from recsim_llm.scenarios import SCENARIOS, scenario_config

    SCENARIOS.register("toy-world", f"{__name__}:toy_scenario")
    try:
        assert scenario_config("toy-world", horizon=3).horizon == 3
        out = tmp_path / "run"
        args = ["simulate", "--scenario", "toy-world", "--users", "4", "--out", str(out)]
        assert main(args) == 0
        config = json.loads((out / "config.json").read_text())
        assert config["scenario"] == "toy-world"
        assert config["env"]["horizon"] == 7 and config["env"]["slate_size"] == 2
        assert {r.scenario for r in read_results(out)} == {"toy-world"}
    finally:
        SCENARIOS.unregister("toy-world")
    with pytest.raises(SystemExit):
        main(["simulate", "--scenario", "toy-world", "--out", str(tmp_path / "again")])
    assert "unknown scenario 'toy-world'" in capsys.readouterr().err


# -- policies -------------------------------------------------------------------------------------
class _FirstSlots:
    """A toy policy: always the first ``k`` candidates, starting at an offset."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.name = f"first-{offset}"

    def reset(self, seed):
        pass

    def act(self, observation, context):
        k = context.slate_size
        row = (np.arange(k) + self.offset) % context.candidates.shape[1]
        return np.tile(row, (context.candidates.shape[0], 1))


def make_first_slots(arg, **_):
    return _FirstSlots(int(arg or 0))


def test_a_toy_policy_is_built_from_its_spec_and_evaluated(tmp_path):
    from recsim_llm.agents.specs import POLICIES, make_policy, policy_forms, register_policy
    from recsim_llm.cli import main
    from recsim_llm.results import read_results

    register_policy("first", f"{__name__}:make_first_slots", form="first[:OFFSET]")
    try:
        assert "first[:OFFSET]" in policy_forms()
        assert make_policy("first:2").offset == 2
        out = tmp_path / "run"
        args = ["evaluate", "--policies", "first:1,random", "--users", "4", "--seeds", "0"]
        assert main([*args, "--horizon", "5", "--encoder", "bow", "--out", str(out)]) == 0
        assert {r.policy for r in read_results(out)} == {"first-1", "random"}
    finally:
        POLICIES.unregister("first")


def test_builtin_policy_specs():
    from recsim_llm.agents.specs import make_policies, make_policy, parse_spec, policy_forms

    assert parse_spec("mix:0.3") == ("mix", "0.3") and parse_spec("random") == ("random", None)
    assert {
        "random",
        "popularity",
        "linucb",
        "thompson",
        "linucb-hybrid[:DISCOUNT]",
        "thompson-hybrid[:DISCOUNT]",
        "myopic",
        "encoder-greedy[:PATH]",
        "oracle",
        "mix:SHARE",
        "model:PATH",
    } == set(policy_forms())
    assert make_policy("mix:0.25").name == "mix-0.25"
    assert make_policy("mix").name == "mix-0.40"
    with pytest.raises(ValueError, match="unknown policy 'greedy'"):
        make_policy("greedy")
    with pytest.raises(ValueError, match="'random' takes no argument"):
        make_policy("random:3")
    with pytest.raises(ValueError, match="share must be a number"):
        make_policy("mix:lots")
    with pytest.raises(ValueError, match="needs the path"):
        make_policy("model:")
    with pytest.raises(ValueError, match="'random' is given twice"):
        make_policies(["random", "random"])
    names = [p.name for p in make_policies(["mix:0.2", "mix:0.20", "mix:.2"])]
    assert names == ["mix-0.20", "mix-0.20#2", "mix-0.20#3"]


# -- CLI commands ---------------------------------------------------------------------------------
def _toy_arguments(parser):
    parser.add_argument("--times", type=int, default=2, help="how many greetings")


def _toy_run(args):
    print("hello " * args.times)
    return 0


def test_a_toy_command_is_registered_and_run(capsys):
    from recsim_llm.cli import COMMANDS, Command, main

    COMMANDS.register("hello", Command("Say hello.", _toy_arguments, _toy_run))
    try:
        assert main(["hello", "--times", "3"]) == 0
        assert capsys.readouterr().out.count("hello") == 3
        with pytest.raises(SystemExit):
            main(["hello", "--help"])
        assert "how many greetings (default: 2)" in capsys.readouterr().out
    finally:
        COMMANDS.unregister("hello")


# -- public names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("package", ["recsim_llm.envs", "recsim_llm.agents"])
def test_packages_export_their_public_names(package):
    import importlib

    module = importlib.import_module(package)
    assert module.__all__ == sorted(module._EXPORTS)
    for name in module.__all__:
        assert getattr(module, name) is load_entry_point(module._EXPORTS[name])
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
