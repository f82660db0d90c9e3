"""`--executor ray` on a local two-CPU Ray cluster: the same store rows as the local executor, videos
written by the workers or shipped back to the driver, dead workers replaced and their jobs retried
(bounded), corrupt videos failed without a retry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
import ray
import torch
from conftest import run_cli

from mibench.cards import card
from mibench.errors import ConfigError, WeightsError
from mibench.generators.base import build_generator
from mibench.generators.synthetic import SyntheticGenerator
from mibench.media.audio import write_wav
from mibench.media.synth import drum_track
from mibench.progress import ClusterProgress
from mibench.stages.executor import make_executor
from mibench.stages.generate import generate_jobs
from mibench.stages.ray_executor import RayExecutor, actor_options
from mibench.store import Store
from mibench.suite.jobs import expand
from mibench.suite.music import music_from_folder

GENERATE = ["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "paper", "--limit", "4"]
TIMINGS = {"seconds", "step_seconds", "decode_seconds"}  # how long a job took: differs between any two runs
SCORE = ["score", "--judge", "videollama2", "--preset", "tiny", "--max-new-tokens", "2", "--mode", "expected"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's generator, for the workers
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 << 20, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("music")
    for bpm in (90, 120):
        write_wav(folder / f"synth-{bpm}bpm.wav", drum_track(bpm, 8.0, sr=16000, seed=bpm), 16000)
    return folder


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, music) -> Path:
    """The reference: four videos made by the local executor."""
    run_dir = tmp_path_factory.mktemp("local") / "run"
    assert generate_jobs(run_dir, Store.open(run_dir), build_generator("synthetic-onbeat", "tiny"),
                         _jobs(music)).done == 4
    return run_dir


def _jobs(music: Path) -> list:
    frames = build_generator("synthetic-onbeat", "tiny").num_frames
    return expand("paper", "synthetic-onbeat", music_from_folder(music), seeds=[0], num_frames=frames, limit=4)


def _cli(args, capsys, monkeypatch) -> tuple[int, dict, str]:
    code, out, err = run_cli([*args, "--json"], capsys, monkeypatch)
    return code, json.loads(out), err


def _videos(run_dir: Path) -> list[tuple]:
    """Every video row and sidecar but the time taken (`TIMINGS`), and the mp4s' bytes."""
    rows = []
    for v in Store.open(run_dir).videos(status=None):
        sidecar = json.loads(Path(v["path"]).with_suffix(".json").read_text()) if v["path"] else {}
        digest = hashlib.sha256(Path(v["path"]).read_bytes()).hexdigest() if v["path"] else None
        rows.append((v["job_id"], v["status"], v["error"], v["fingerprint"], _untimed(v["info"]), _untimed(sidecar),
                     Path(v["path"]).relative_to(run_dir).as_posix() if v["path"] else None, digest))
    return rows


def _untimed(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in TIMINGS}


@contextmanager
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _results(run_dir: Path) -> tuple[list, list]:
    """The answers and metrics of a run (all but their creation times)."""
    store = Store.open(run_dir)
    answers = sorted(tuple(v for k, v in a.items() if k != "created") for a in store.answers())
    metrics = sorted(tuple(v for k, v in m.items() if k != "created") for m in store.metrics(latest=False))
    return answers, metrics


@pytest.mark.parametrize("files", ["shared", "no-shared-fs"])
def test_generate_on_ray_stores_what_the_local_executor_stores(files, tmp_path, music, local_run, capsys,
                                                                monkeypatch):
    run_dir = tmp_path / "run"
    args = [*GENERATE, "--music", str(music), "--run-dir", str(run_dir), "--executor", "ray", "--workers", "2"]
    if files == "shared":  # half of the jobs first: the second run resumes
        code, first, _ = _cli([*args, "--limit", "2"], capsys, monkeypatch)
        assert code == 0 and first["done"] == 2
    code, result, err = _cli(args + ["--no-shared-fs"] * (files == "no-shared-fs"), capsys, monkeypatch)
    done = 2 if files == "shared" else 4
    assert code == 0 and (result["done"], result["skipped"], result["retried"]) == (done, 4 - done, [])
    assert f"generate synthetic-onbeat on Ray: {done}/{done} done, 0 failed" in err
    assert " w0 " in err and "/min" in err  # each worker's throughput
    assert _videos(run_dir) == _videos(local_run)
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".")]  # no temp or probe files left


def test_score_and_metrics_on_ray_store_what_the_local_executor_stores(tmp_path, local_run, capsys, monkeypatch):
    """The same video files scored and measured locally, on Ray and on Ray without a shared file system;
    one of them is corrupt: failed, not retried. Torch runs on one thread here, as in a one-CPU Ray actor
    (Ray sets OMP_NUM_THREADS=1): with two, the expected scores differ in their last bits (up to 4e-8)."""
    runs = {"local": [], "ray": ["--executor", "ray"], "ray-no-shared-fs": ["--executor", "ray", "--no-shared-fs"]}
    for name in runs:
        shutil.copytree(local_run, tmp_path / name)
        broken = Store.open(tmp_path / name).videos()[1]
        Path(broken["path"]).write_bytes(b"\0" * 4096)
    for name, options in runs.items():
        run_dir = ["--run-dir", str(tmp_path / name), *options]
        with one_torch_thread():
            code, scored, _ = _cli([*SCORE, *run_dir], capsys, monkeypatch)
        assert code == 1 and scored["done"] == 3 and scored["retried"] == []
        assert [f["job_id"] for f in scored["failed"]] == [broken["job_id"]]
        code, measured, _ = _cli(["metrics", *run_dir], capsys, monkeypatch)
        assert code == 1 and measured["done"] == 3 and measured["retried"] == []
        assert [f["job_id"] for f in measured["failed"]] == [broken["job_id"]]
    reference = _results(tmp_path / "local")
    assert len(reference[0]) == 3 * 11 and reference[1]
    assert _results(tmp_path / "ray") == reference  # exact: the same answers, scores and metric values
    assert _results(tmp_path / "ray-no-shared-fs") == reference


class CrashingGenerator(SyntheticGenerator):
    """Writes the video, then kills its worker process: always for `always`, once for `once` (while the
    file `once_marker` exists)."""

    def __init__(self, *args, always: str, once: str, once_marker: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.always, self.once, self.once_marker = always, once, once_marker

    def generate(self, job, out_path):
        info = super().generate(job, out_path)
        if job.job_id == self.always or (job.job_id == self.once and self.once_marker.exists()):
            self.once_marker.unlink(missing_ok=True)
            os._exit(1)
        return info


def test_a_dead_worker_is_replaced_and_its_jobs_retried_a_bounded_number_of_times(tmp_path, music, local_run):
    jobs = _jobs(music)
    marker = tmp_path / "crash-once"
    marker.touch()
    build = partial(CrashingGenerator, card("synthetic-onbeat", "generator"), "tiny", always=jobs[3].job_id,
                    once=jobs[0].job_id, once_marker=marker)
    lines: list[str] = []
    run_dir = tmp_path / "run"
    summary = generate_jobs(run_dir, Store.open(run_dir), build_generator("synthetic-onbeat", "tiny"), jobs,
                            executor=make_executor("ray", workers=2, build=build, max_retries=1, log=lines.append))
    assert summary.done == 3 and summary.skipped == 0
    assert summary.failed == [(jobs[3].job_id, summary.failed[0][1])]
    assert summary.failed[0][1].startswith("gave up after 2 attempts: Ray worker w")
    # only the jobs running when their worker died count: those queued behind them had not started
    assert sorted(job_id for job_id, _ in summary.retried) == sorted([jobs[0].job_id] + [jobs[3].job_id] * 2)
    assert any("died" in line and "starting a new one" in line for line in lines)
    done = [row for row in _videos(run_dir) if row[1] == "done"]
    assert done == [row for row in _videos(local_run) if row[0] != jobs[3].job_id]  # each once, as made locally
    store = Store.open(run_dir)
    assert store.video(jobs[3].job_id)["status"] == "failed"
    assert store.db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_a_real_model_on_ray_makes_what_it_makes_locally(tmp_path, music, capsys, monkeypatch):
    args = ["generate", "--model", "musicinfuser", "--preset", "tiny", "--suite", "paper", "--limit", "2", "--music",
            str(music)]
    for name, options in (("local", []), ("ray", ["--executor", "ray"])):
        code, result, _ = _cli([*args, "--run-dir", str(tmp_path / name), *options], capsys, monkeypatch)
        assert code == 0 and result["done"] == 2
    assert _videos(tmp_path / "ray") == _videos(tmp_path / "local")


@pytest.mark.parametrize("option", [["--ray-address", "auto"], ["--no-shared-fs"], ["--workers", "2"],
                                    ["--max-retries", "1"]])
def test_ray_options_need_the_ray_executor(option, tmp_path, music, capsys, monkeypatch):
    code, out, err = run_cli([*GENERATE, "--music", str(music), "--run-dir", str(tmp_path), *option], capsys,
                             monkeypatch)
    assert code == 2 and out == "" and err.startswith("error: ") and "options of the Ray executor" in err


def test_a_killed_driver_resumes_from_the_store(tmp_path, music, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    args = ["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "paper", "--limit", "12",
            "--music", str(music), "--run-dir", str(run_dir), "--executor", "ray"]
    driver = subprocess.Popen([sys.executable, "-m", "mibench", *args, "--ray-address",
                               ray.get_runtime_context().gcs_address], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ((run_dir / "mibench.sqlite").is_file() and Store.open(run_dir).videos()):
        time.sleep(0.05)
    driver.kill()
    driver.wait()
    made = len(Store.open(run_dir).videos())
    assert 0 < made < 12
    code, result, _ = _cli(args, capsys, monkeypatch)
    assert code == 0 and result["skipped"] == made and result["done"] == 12 - made
    store = Store.open(run_dir)
    assert len(store.videos()) == 12 and store.db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


class UnloadableGenerator(SyntheticGenerator):
    def prepare(self):
        raise WeightsError("weights of the test generator are missing", "give them")


@pytest.mark.parametrize(("build", "error", "needle"), [
    (partial(UnloadableGenerator, card("synthetic-onbeat", "generator"), "tiny"), WeightsError, "are missing"),
    (partial(build_generator, "synthetic-onbeat", "tiny", options={"num_frames": 12}), ConfigError,
     "has other settings or weights than this process"),
])
def test_a_worker_that_cannot_load_or_differs_stops_before_any_job(build, error, needle, tmp_path, music):
    store = Store.open(tmp_path)
    with pytest.raises(error, match=needle):
        generate_jobs(tmp_path, store, build_generator("synthetic-onbeat", "tiny"), _jobs(music),
                      executor=RayExecutor(workers=1, build=build))
    assert store.model_settings("synthetic-onbeat") is None and not store.videos(status=None)  # nothing bound


def test_cluster_progress_lines_show_each_worker_and_the_eta():
    lines: list[str] = []
    progress = ClusterProgress(lines.append, "score on Ray", total=10, interval=0.0)
    progress.joined("w0")
    progress.joined("w1")
    for name in ("w0", "w0", "w1"):
        progress.finished(name, failed=False)
    progress.finished("w1", failed=True)
    progress.retried()
    line = progress.line(2, progress.workers["w0"][0] + 60)
    assert line.startswith("score on Ray: 3/10 done, 1 failed, 2 running, 1 retried; workers w0 2.0/min, w1 2.0/min;")
    assert line.endswith(", ETA 0:01:30")  # 6 jobs left at 4 a minute


def test_workers_reserve_what_the_card_asks_for(tmp_path, music, local_run):
    wide = dataclasses.replace(card("synthetic-onbeat", "generator"), resources={"num_cpus": 2, "memory_gb": 0.25})
    lines: list[str] = []
    run_dir = tmp_path / "run"
    summary = generate_jobs(run_dir, Store.open(run_dir), SyntheticGenerator(wide, "tiny"), _jobs(music),
                            executor=make_executor("ray", build=partial(SyntheticGenerator, wide, "tiny"),
                                                   log=lines.append))
    assert summary.done == 4
    assert any(line.endswith("starting 1 Ray workers") for line in lines)  # two CPUs hold one worker of 2 CPUs
    assert _videos(run_dir) == _videos(local_run)


class OnCuda:
    """A model that says it runs on CUDA (only its card and device are read)."""

    device = "cuda:0"

    def __init__(self, resources: dict):
        self.card = dataclasses.replace(card("musicinfuser", "generator"), resources=resources)


def test_actor_options_follow_the_card():
    assert actor_options(None) == {"num_cpus": 1}
    assert actor_options(build_generator("synthetic-onbeat", "tiny")) == {"num_cpus": 1}
    assert actor_options(OnCuda({})) == {"num_gpus": 1}
    assert actor_options(OnCuda({"num_gpus": 0.5, "memory_gb": 2})) == {"num_gpus": 0.5, "memory": 2 << 30}


@pytest.mark.parametrize(("resources", "needle"), [({"gpus": 1}, "unknown resource 'gpus'"),
                                                   ({"num_gpus": 0}, "num_gpus must be a positive number"),
                                                   ({"memory_gb": "lots"}, "memory_gb must be a positive number")])
def test_a_card_with_bad_resources_is_refused(resources, needle):
    with pytest.raises(ConfigError, match=needle):
        dataclasses.replace(card("musicinfuser", "generator"), resources=resources)
