"""The demo's two rigs: separate boxes behind one house, of different efficiency."""

from __future__ import annotations

from pathlib import Path

from demo.rigs import demo_rigs
from joulegate_agent.identity import load_device_id
from joulegate_agent.power.simulated import MODE_FILE


def test_a_second_demo_rig_on_the_same_machine_is_a_device_of_its_own(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    rigs = demo_rigs(2, tmp_path, agent_port=8787, llm_port=8080, tokens_per_s=25.0)
    for rig in rigs:
        rig.prepare()
    assert len({load_device_id(rig.data_dir, root) for rig in rigs}) == 2
    assert len({rig.agent_port for rig in rigs} | {rig.llm_port for rig in rigs}) == 4


def test_each_demo_llm_decodes_at_its_own_agents_power_level(tmp_path: Path) -> None:
    for rig in demo_rigs(2, tmp_path, agent_port=8787, llm_port=8080, tokens_per_s=25.0):
        argv = rig.llm(tmp_path / "logs").argv
        assert argv[argv.index("--power-mode-file") + 1] == str(rig.data_dir / MODE_FILE)


def test_the_second_demo_rig_spends_more_energy_per_token() -> None:
    a, b = demo_rigs(2, Path("data"), agent_port=8787, llm_port=8080, tokens_per_s=25.0)
    assert b.gain / b.tokens_per_s > 2 * a.gain / a.tokens_per_s
    assert "--gain" in b.agent(Path("logs")).argv
