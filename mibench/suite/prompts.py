"""Prompt suites and judge question sets, read from the YAML files in `prompts/`.

Layout: `prompts/<suite>.yaml` holds `name`, `source` and `prompts: [{id, text, ...tags}]`;
`prompts/questions/<set>.yaml` holds `name`, `source` and `questions: [{id, metric, category, text,
needs_prompt?}]`, where `{prompt_text}` in a question is replaced by the job's prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mibench.errors import ConfigError
from mibench.resources import data_dir

CATEGORIES = ("Dance Quality", "Video Quality", "Prompt Alignment")


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    tags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PromptSet:
    name: str
    source: str
    prompts: tuple[Prompt, ...]


@dataclass(frozen=True)
class Question:
    id: str
    metric: str
    category: str
    text: str
    needs_prompt: bool = False

    def render(self, prompt: str | None) -> str:
        """The question as asked; alignment questions get the prompt inside their quotes."""
        if not self.needs_prompt:
            return self.text
        if not prompt:
            raise ConfigError(f"question {self.id!r} needs the video's prompt, and the job has none")
        return self.text.replace("{prompt_text}", prompt)


@dataclass(frozen=True)
class QuestionSet:
    name: str
    source: str
    questions: tuple[Question, ...]

    def for_prompt(self, prompt: str | None) -> list[Question]:
        """The questions that apply to a video: alignment questions only when it has a prompt."""
        return [q for q in self.questions if prompt or not q.needs_prompt]


def _read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path} is not a mapping")
    return data


def _resolve(name_or_path: str, folder: Path, what: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
    raise ConfigError(f"unknown {what} {name_or_path!r}", f"known: {known}, or a path to a .yaml file")


def prompt_sets() -> list[str]:
    return sorted(p.stem for p in data_dir("prompts").glob("*.yaml"))


def question_sets() -> list[str]:
    return sorted(p.stem for p in (data_dir("prompts") / "questions").glob("*.yaml"))


def load_prompt_set(name_or_path: str) -> PromptSet:
    path = _resolve(name_or_path, data_dir("prompts"), "prompt suite")
    data = _read_yaml(path, "prompt suite")
    prompts = []
    for entry in data.get("prompts") or []:
        entry = dict(entry)
        try:
            prompts.append(Prompt(id=str(entry.pop("id")), text=str(entry.pop("text")), tags=entry))
        except KeyError as exc:
            raise ConfigError(f"a prompt in {path} lacks the field {exc}") from exc
    if not prompts:
        raise ConfigError(f"prompt suite {path} has no prompts")
    if len({p.id for p in prompts}) != len(prompts):
        raise ConfigError(f"prompt suite {path} repeats a prompt id")
    return PromptSet(name=data.get("name", path.stem), source=data.get("source", ""), prompts=tuple(prompts))


def load_question_set(name_or_path: str = "paper") -> QuestionSet:
    path = _resolve(name_or_path, data_dir("prompts") / "questions", "question set")
    data = _read_yaml(path, "question set")
    questions = []
    for entry in data.get("questions") or []:
        try:
            question = Question(**entry)
        except TypeError as exc:
            raise ConfigError(f"a question in {path} is malformed: {exc}") from exc
        if question.category not in CATEGORIES:
            raise ConfigError(f"question {question.id!r} in {path} has unknown category {question.category!r}")
        questions.append(question)
    if not questions:
        raise ConfigError(f"question set {path} has no questions")
    return QuestionSet(name=data.get("name", path.stem), source=data.get("source", ""), questions=tuple(questions))
