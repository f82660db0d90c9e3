"""Training captions: AIST Dance DB file names, the test-split exclusion, and the caption of every clip.

As the official `music_infuser/embed_captions.py` and `dataset.py` (MusicInfuser @41954c9):

- An AIST video is named `g{genre}_s{situation}_c{camera}_d{dancer}[_d{dancer}...]_m{genre}{k}_ch{choreo}`,
  e.g. `gBR_sBM_c01_d04_mBR1_ch01.mp4`. Names of that form with an unknown genre, situation, camera or
  dancer code are refused (`ConfigError`); every other name is an in-the-wild video.
- Training keeps the cameras c01 ("front view") and c10 ("moving front view") and drops the 10 test-split
  music ids (`mibench.suite.aist.TEST_MUSIC_IDS`, the paper's Table 9).
- An AIST clip's detailed caption is one of the paper's 4 templates (Table 10), filled with the genre and
  situation names, the camera view and "a professional {male|female} dancer" per dancer (the official
  35-dancer gender table; several dancers read "A, B and C"). The template is drawn per clip from
  `random.Random(f"caption:{seed}:{clip_id}")`, so a clip's caption depends on the seed and its id only.
  Its basic caption is "a professional dancer dancing in a studio with a white backdrop".
- An in-the-wild clip's detailed caption is the text of `<video>.txt` beside the video (stripped;
  e.g. a VideoChat2 description, as the paper's). A missing or empty caption file gives
  "a YouTube dance video", as officially (the official trimming script writes an empty caption file for a
  video without one). Its basic caption is "a dance video".
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from mibench.errors import ConfigError
from mibench.suite.aist import GENRES, TEST_MUSIC_IDS

SITUATIONS = {"BM": "basic dance", "FM": "advanced dance", "MM": "moving camera", "GR": "group dance",
              "SH": "showcase", "CY": "cypher", "BT": "battle"}
CAMERA_VIEWS = {
    "c01": "front view",
    "c02": "front-left diagonal view",
    "c03": "left side view",
    "c04": "back-left diagonal view",
    "c05": "back view",
    "c06": "back-right diagonal view",
    "c07": "right side view",
    "c08": "front-right diagonal view",
    "c09": "close-up front view from a low angle",
    "c10": "moving front view",
}
TRAIN_CAMERAS = ("c01", "c10")
# Gender of the AIST dancers d01..d35 (F/M), from the official caption script's dancer table.
_GENDERS = "FFFMMMFFFMMFFMFFMFFMMMMMFFFMMMMMMMM"
DANCER_GENDERS = {f"d{i + 1:02d}": "female" if g == "F" else "male" for i, g in enumerate(_GENDERS)}

TEMPLATES = (
    "{dancers} dancing {genre} in a {situation} setting in a studio with a white backdrop, captured from a {camera}",
    "a {camera} video of {dancers} performing {genre} choreography against a white background in a {situation} scene",
    "{dancers} executing {genre} movements in a minimalist studio space in a {situation} setting, shot from a {camera}",
    "a {genre} dance performance by {dancers} in a pristine white studio, {camera}, {situation}",
)
AIST_BASIC = "a professional dancer dancing in a studio with a white backdrop"
WILD_BASIC = "a dance video"
WILD_EMPTY = "a YouTube dance video"

_AIST_NAME = re.compile(r"^g([A-Z]+)_s([A-Z]+)_(c\d+)_((?:d\d+_)+)(m[A-Z]+\d+)_ch(\d+)$")
_AIST_LOOKALIKE = re.compile(r"^g[A-Z]{2}_s[A-Z]{2}_c\d+_")  # the start of an AIST name, whatever follows


@dataclass(frozen=True)
class AistName:
    """The fields of an AIST video's file name (codes as written: "BR", "BM", "c01", ("d04",), "mBR1", "01")."""

    genre_code: str
    situation_code: str
    camera: str
    dancers: tuple[str, ...]
    music_id: str
    choreography: str

    @property
    def genre(self) -> str:
        return GENRES[self.genre_code]

    @property
    def situation(self) -> str:
        return SITUATIONS[self.situation_code]

    @property
    def camera_view(self) -> str:
        return CAMERA_VIEWS[self.camera]

    @property
    def dancers_text(self) -> str:
        each = [f"a professional {DANCER_GENDERS[d]} dancer" for d in self.dancers]
        return each[0] if len(each) == 1 else ", ".join(each[:-1]) + f" and {each[-1]}"


def parse_aist_name(stem: str) -> AistName | None:
    """The AIST fields of a file name without its extension; None when it is not AIST-style."""
    match = _AIST_NAME.match(stem)
    if match is None:
        return None
    genre, situation, camera, dancers, music_id, choreography = match.groups()
    name = AistName(genre, situation, camera, tuple(dancers.rstrip("_").split("_")), music_id, choreography)
    unknown = [(what, code) for what, code, known in (
        ("genre", genre, GENRES), ("situation", situation, SITUATIONS), ("camera", camera, CAMERA_VIEWS),
        ("music genre", music_id[1:3], GENRES), *(("dancer", d, DANCER_GENDERS) for d in name.dancers),
    ) if code not in known]
    if unknown:
        what, code = unknown[0]
        raise ConfigError(f"AIST-style name {stem!r} has an unknown {what} code {code!r}",
                          "rename the file (AIST names look like gBR_sBM_c01_d04_mBR1_ch01)")
    return name


def unparsed_aist(stem: str) -> str | None:
    """Why a file name that starts like an AIST one (gBR_sBM_c01_...) but does not parse (a suffix, a copy
    number) is left out: its music and camera are unknown, so it could be a test-split or other-camera
    video; None for any other name."""
    if _AIST_LOOKALIKE.match(stem) and not _AIST_NAME.match(stem):
        return ("an AIST-style name that does not parse, so its music and camera are unknown "
                "(rename it as gBR_sBM_c01_d04_mBR1_ch01 to use it)")
    return None


def exclusion(name: AistName, cameras: tuple[str, ...] = TRAIN_CAMERAS) -> str | None:
    """Why an AIST video is left out of training (test-split music, another camera), or None."""
    if name.music_id in TEST_MUSIC_IDS:
        return f"test-split music {name.music_id}"
    if name.camera not in cameras:
        return f"camera {name.camera} ({name.camera_view}) is not one of {', '.join(cameras)}"
    return None


def aist_caption(name: AistName, seed: int, clip_id: str) -> str:
    """The detailed caption of one AIST clip: a template drawn for (seed, clip_id), filled from the name."""
    template = random.Random(f"caption:{seed}:{clip_id}").choice(TEMPLATES)
    return template.format(dancers=name.dancers_text, genre=name.genre, situation=name.situation,
                           camera=name.camera_view)


def wild_caption(video: Path) -> str:
    """The detailed caption of an in-the-wild video: its `<video>.txt`, else "a YouTube dance video"."""
    caption_file = Path(video).with_suffix(".txt")
    text = caption_file.read_text(encoding="utf-8").strip() if caption_file.is_file() else ""
    return text or WILD_EMPTY
