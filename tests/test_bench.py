"""The benchmark definition: AIST split, prompt suites, question sets, job ids and suite expansion."""

from __future__ import annotations

import pytest

from mibench.errors import ConfigError, MediaError
from mibench.suite import aist
from mibench.suite.jobs import Job, Music, expand, music_from_folder, select_shard, slug
from mibench.suite.music import resolve_music
from mibench.suite.prompts import load_prompt_set, load_question_set

# The official strings of MusicInfuser's vlm_eval scripts (@41954c9), quoted in shared/notes/benchmark.md §4.
PAPER_QUALITY = [
    "Rate the imaging quality 0-10 where: 0 means poor imaging quality, 5 means moderate imaging quality, and 10 "
    "means perfect imaging quality. Output only the number.",
    "Rate the aesthetic quality 0-10 where: 0 means poor aesthetic quality, 5 means moderate aesthetic quality, and "
    "10 means perfect aesthetic quality. Output only the number.",
    "Rate the overall consistency 0-10 where: 0 means poor consistency, 5 means moderate consistency, and 10 means "
    "perfect consistency. Output only the number.",
    "Rate the style alignment of the dance to music 0-10 where: 0 means poor style alignment of the dance to music, "
    "5 means moderate style alignment of the dance to music, and 10 means perfect style alignment of the dance to "
    "music. Output only the number.",
    "Rate the beat alignment of the dance to music 0-10 where: 0 means poor beat alignment of the dance to music, 5 "
    "means moderate beat alignment of the dance to music, and 10 means perfect beat alignment of the dance to music. "
    "Output only the number.",
    "Rate the body representation of the dancer 0-10 where: 0 means unrealistic/distorted proportions of the "
    "dancer, 5 means minor anatomical issues of the dancer, and 10 means anatomically perfect representation of the "
    "dancer. Output only the number.",
    "Rate the movement realism of the dancer 0-10 where: 0 means poor movement realism of the dancer, 5 means "
    "moderate movement realism of the dancer, and 10 means perfect movement realism of the dancer. Output only the "
    "number.",
    "Rate the complexity of the choreography 0-10 where: 0 means extremely basic choreography, 5 means intermediate "
    "choreography, and 10 means extremely complex/advanced choreography. Output only the number.",
]
PAPER_ALIGNMENT = [
    "How well does the dance video capture the specific style mentioned in the prompt: '{prompt_text}'? Rate 0-10 "
    "where: 0 means completely missed the style, 5 means some elements of the style are present, and 10 means "
    "perfectly captures the style. Output only the number.",
    "Based on the prompt '{prompt_text}', rate the creativity in interpreting the prompt 0-10 where: 0 means "
    "generic/standard interpretation, 5 means moderate creativity, and 10 means highly creative and unique "
    "interpretation. Output only the number.",
    "Rate the overall prompt satisfaction 0-10 where: 0 means the video fails to satisfy the prompt '{prompt_text}', "
    "5 means it partially satisfies the prompt, and 10 means it fully satisfies all aspects of the prompt. Output "
    "only the number.",
]
QUALITY_METRICS = ["Imaging Quality", "Aesthetic Quality", "Overall Consistency", "Style Alignment", "Beat Alignment",
                   "Body Representation", "Movement Realism", "Choreography Complexity"]


def test_question_texts_are_the_papers_verbatim():
    qset = load_question_set("paper")
    quality = [q for q in qset.questions if not q.needs_prompt]
    alignment = [q for q in qset.questions if q.needs_prompt]
    assert [q.text for q in quality] == PAPER_QUALITY
    assert [q.text for q in alignment] == PAPER_ALIGNMENT
    assert [q.metric for q in quality] == QUALITY_METRICS
    assert [q.metric for q in alignment] == ["Style Capture", "Creative Interpretation", "Overall Prompt Satisfaction"]
    assert [q.category for q in quality] == ["Video Quality"] * 3 + ["Dance Quality"] * 5
    assert {q.category for q in alignment} == {"Prompt Alignment"}


def test_alignment_questions_insert_the_prompt_inside_quotes():
    question = load_question_set("paper").questions[-1]
    text = question.render("a dancer on a roof")
    assert "'a dancer on a roof'" in text and "{prompt_text}" not in text
    with pytest.raises(ConfigError, match="needs the video's prompt"):
        question.render("")
    assert len(load_question_set("paper").for_prompt("")) == 8


def test_paper_prompts_and_extended_benchmark():
    paper = load_prompt_set("paper").prompts
    assert len(paper) == 10
    assert paper[0].text == "a male dancer dancing on a rooftop at sunset, captured from a front view"
    assert paper[8].text.startswith("a male dancer wearing a chef’s uniform")
    extended = load_prompt_set("extended").prompts
    assert len(extended) >= 40
    assert [p.text for p in extended[:10]] == [p.text for p in paper]
    for axis in ("style", "dancer", "setting", "group", "camera"):
        assert all(axis in p.tags for p in extended), axis
        assert len({p.tags[axis] for p in extended}) >= 3, axis


def test_aist_test_split_and_tempo_rule():
    tracks = aist.test_tracks()
    assert [t.music_id for t in tracks] == ["mLH4", "mKR2", "mBR0", "mLO2", "mJB5", "mWA0", "mJS3", "mMH3", "mHO5",
                                            "mPO1"]
    assert {t.music_id: t.bpm for t in tracks} == {"mBR0": 80, "mPO1": 90, "mLO2": 100, "mMH3": 110, "mLH4": 120,
                                                   "mHO5": 135, "mWA0": 80, "mKR2": 100, "mJS3": 110, "mJB5": 130}
    assert aist.track("mHO0").bpm == 110 and aist.track("mJB0").genre == "Ballet Jazz"
    for bad in ("mXX1", "mBR6", "BR0", "mbr0"):
        with pytest.raises(ConfigError, match="not an AIST music id"):
            aist.tempo(bad)


def test_aist_music_folder_resolution(tmp_path):
    with pytest.raises(MediaError, match="aistdancedb"):
        aist.find_music(tmp_path / "nope", "mBR0")
    for music_id in aist.TEST_MUSIC_IDS[:9]:
        (tmp_path / f"{music_id}.wav").write_bytes(b"")
    (tmp_path / "mPO1.mp3").write_bytes(b"")
    assert aist.find_music(tmp_path, "mPO1").name == "mPO1.mp3"
    assert len(resolve_music(tmp_path, None)) == 10
    (tmp_path / "mBR0.wav").unlink()
    with pytest.raises(MediaError, match="lacks mBR0"):
        resolve_music(tmp_path, None)
    with pytest.raises(ConfigError, match="no music given"):
        resolve_music(None, None)


def test_music_folder_reads_tempo_from_names(tmp_path):
    for name in ("mHO5.wav", "synth-128bpm.wav", "song.mp3", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    music = {m.id: m for m in music_from_folder(tmp_path)}
    assert set(music) == {"mHO5", "synth-128bpm", "song"}
    assert music["mHO5"].bpm == 135 and music["synth-128bpm"].bpm == 128 and music["song"].bpm is None


def _job(**changes) -> Job:
    base = dict(model="musicinfuser", suite="paper", music_id="mBR0", music_path="/x/mBR0.wav", prompt_id="p01",
                prompt="a male dancer dancing on a rooftop at sunset, captured from a front view", seed=0,
                num_frames=145)
    return Job(**{**base, **changes})


def test_job_ids_are_stable_and_depend_on_the_right_fields():
    job = _job()
    assert job.job_id == "mBR0-p01-s0-" + job.job_id.rsplit("-", 1)[1]
    assert job.job_id == _job().job_id
    assert job.job_id == _job(music_path="/elsewhere/mBR0.mp3", suite="other").job_id
    for change in ({"model": "mochi"}, {"music_id": "mPO1"}, {"prompt": "x"}, {"seed": 1}, {"num_frames": 73},
                   {"tempo": 1.25}):
        assert _job(**change).job_id != job.job_id, change
    assert _job(model="mochi").item_id == job.item_id
    assert _job(seed=1).item_id != job.item_id
    # Golden value: a change of the id scheme would orphan every stored result.
    assert job.job_id == "mBR0-p01-s0-4185f4847e"


def test_slug_is_file_name_safe():
    assert slug("../../etc/passwd") == "etc_passwd"
    assert slug("<script>alert(1)</script>") == "script_alert_1_script"
    assert slug("") == "x"


def test_suite_expansion_counts():
    music = [Music(id=m, path=f"/m/{m}.wav") for m in aist.TEST_MUSIC_IDS]
    paper = expand("paper", "musicinfuser", music, seeds=[0], num_frames=145)
    assert len(paper) == 100 and len({j.job_id for j in paper}) == 100
    assert len({(j.music_id, j.prompt_id) for j in paper}) == 100
    assert len(expand("aist", "mmdiffusion", music, seeds=[0], num_frames=16)) == 10
    assert len(expand("aist", "mmdiffusion", music, seeds=[0, 1, 2], num_frames=16)) == 30
    extended = expand("prompts", "mochi", music, seeds=[0], num_frames=145)
    assert len(extended) == len(load_prompt_set("extended").prompts)
    assert {j.music_id for j in extended} == set(aist.TEST_MUSIC_IDS)
    assert len(expand("paper", "musicinfuser", music, seeds=[0], num_frames=145, limit=7)) == 7
    with pytest.raises(ConfigError, match="unknown suite"):
        expand("nope", "m", music, seeds=[0], num_frames=1)
    with pytest.raises(ConfigError, match="at least one music"):
        expand("aist", "m", [], seeds=[0], num_frames=1)


def test_ci_runs_the_readmes_test_command():
    from conftest import TESTS

    readme = (TESTS.parent / "README.md").read_text()
    ci = (TESTS.parent / ".ci" / "run").read_text()
    test_line = next(line for line in readme.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    command = test_line.split("pip install torch==2.13.0 && ", 1)[1]
    assert command in ci
    assert "pip install -q torch==2.13.0" in ci


def test_shards_split_jobs_without_overlap():
    music = [Music(id=m, path=f"/m/{m}.wav") for m in aist.TEST_MUSIC_IDS]
    jobs = expand("paper", "m", music, seeds=[0], num_frames=16)
    shards = [select_shard(jobs, f"{i}/3") for i in range(3)]
    assert sorted(j.job_id for s in shards for j in s) == sorted(j.job_id for j in jobs)
    assert [len(s) for s in shards] == [34, 33, 33] and select_shard(jobs, None) == jobs
    for bad in ("1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ConfigError, match="bad shard"):
            select_shard(jobs, bad)
    with pytest.raises(ConfigError, match=r"shard 3/3 is out of range: I counts from 0 \(the shards of 3 are "
                                          r"0/3 \.\. 2/3\)"):
        select_shard(jobs, "3/3")
