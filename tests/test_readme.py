"""The README's promises, as a new user meets them: its commands run as written, from any clone,
with nothing printed but naolit's own progress and results."""

import re
import subprocess
import sys

import pytest

from conftest import CHILD_ENV, ROOT

# What Python prints for a warning ("file.py:12: UserWarning: ...") and Lightning's tips ("💡 Tip: ...").
NOISE = re.compile(r"\w*Warning: |💡")


def readme_commands(section: str, page: str = "README.md") -> list[str]:
    """The commands of the bash blocks in the section titled ``section`` of ``page`` (the README, or a
    page of ``docs/``), comments dropped."""
    text = (ROOT / page).read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_five_minute_tour_is_every_kind_of_job():
    commands = readme_commands("Try it in five minutes")
    assert [c.split("+experiment=")[1].split()[0] for c in commands] == [
        "nb201_nao", "cifar10_ws_tiny", "ptb_ws_tiny", "cifar10_final_tiny"]


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands("Try it in five minutes"))
def test_the_five_minute_tour_runs_as_written_and_quietly(command, tmp_path, request):
    if "ptb" in command:
        request.getfixturevalue("ptb_data")  # PTB: in NAOLIT_DATA_DIR, or downloaded; else skip
    run = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**CHILD_ENV, "PROJECT_ROOT": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    noise = [line for line in (run.stdout + run.stderr).splitlines() if NOISE.search(line)]
    assert noise == []
    assert list((tmp_path / "outputs").glob("*/runs/*/csv/metrics.csv"))


@pytest.mark.slow
def test_the_main_job_runs_from_a_fresh_clone_without_a_data_folder(tmp_path):
    clone = tmp_path / "naolit"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in CHILD_ENV.items() if k not in ("NAOLIT_DATA_DIR", "PROJECT_ROOT")}
    run = subprocess.run([sys.executable, "train.py", "+experiment=nb201_nao", "search.budget=40"], cwd=clone,
                         capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (clone / "data").exists()  # the NAS-Bench-201 table came with the package
    runs = list((clone / "outputs" / "nb201" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "search" / "best_genotype.json").is_file()
    assert len((runs[0] / "search" / "history.csv").read_text().splitlines()) == 1 + 40
    assert not NOISE.search(run.stdout + run.stderr)
