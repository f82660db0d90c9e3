"""Numbers reported by papers, not measured by mibench: one YAML per paper in `reports/` (the MusicInfuser
paper's own tables and what other papers report under the same protocol), each with its source, label,
judge, protocol differences, where it was read, whether it was verified and what was left out.

The leaderboard lists a paper's judge-table rows under a judge group only when the paper names the same
judge card (`judge_card`), its numbers were verified in the paper's own text (`verified: true`) and the
group is the paper's protocol (greedy); every document is shown in the report's reference section, an
unverified one without its numbers (`shown`: in leaderboard.json too). Rows of a table are
`{model, <question id or category key>: value}` (see `paper_reported.yaml`).
"""

from __future__ import annotations

import yaml

from mibench.errors import ConfigError
from mibench.resources import data_dir

REQUIRED = ("source", "label", "verified", "tables")
FIRST = "paper_reported.yaml"  # the reproduced paper's own numbers come first


def load_references() -> list[dict]:
    """Every reference document of `reports/`, the MusicInfuser paper's first, each with its file `name`."""
    folder = data_dir("reports")
    documents = []
    for path in sorted(folder.glob("*.yaml"), key=lambda p: (p.name != FIRST, p.name)):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        missing = [key for key in REQUIRED if key not in document]
        if missing:
            raise ConfigError(f"reference file {path} lacks {', '.join(missing)}",
                              "each reports/*.yaml needs source, label, verified and tables")
        tables = {key: {**table, "columns": table.get("columns") or {}, "keys": _keys(table)}
                  for key, table in (document["tables"] or {}).items()}
        documents.append({**document, "name": path.stem, "tables": tables})
    return documents


def _keys(table: dict) -> list[str]:
    """The columns of a reported table in the order its rows name them (not `model` nor `bold`)."""
    return list(dict.fromkeys(k for row in table.get("rows", []) for k in row if k not in ("model", "bold")))


def verified(document: dict) -> bool:
    """Whether a document's numbers were read in the paper's own text (`verified: true`); no number of
    another document is shown anywhere."""
    return document.get("verified") is True


def shown(document: dict) -> dict:
    """The document as the report hands it out: an unverified one without its tables' numbers."""
    return document if verified(document) else {**document, "tables": {}}


def judge_rows(documents: list[dict], judge_card: str, key: str) -> list[tuple[dict, dict]]:
    """(document, row) of every reported row of table `key` (dance_quality, video_quality,
    prompt_alignment) from the verified documents that used `judge_card`."""
    return [(document, row) for document in documents
            if verified(document) and document.get("judge_card") == judge_card
            for row in document["tables"].get(key, {}).get("rows", [])]


def reported_number(value: object) -> str:
    """A reported value as the paper prints it: at least two decimals (YAML reads 7.20 as 7.2), more when
    the paper gives more (0.2448); text (e.g. a modality) as is."""
    if not isinstance(value, float):
        return str(value)
    decimals = len(repr(value).split(".")[1]) if "." in repr(value) and "e" not in repr(value) else 2
    return f"{value:.{max(2, decimals)}f}"
