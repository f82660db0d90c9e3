"""AIST Dance DB music: the test split, genre names, tempo rule and a user's local music folder.

The 10 test-split music ids follow AI Choreographer's music-disjoint split (the tracks MusicInfuser
excludes from training). Media cannot be redistributed: mibench ships ids and BPMs only and finds the
audio in a folder the user downloaded (`--aist-music DIR`, files named like `mBR0.wav` or `mBR0.mp3`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mibench.errors import ConfigError, MediaError

GENRES = {
    "BR": "Break",
    "PO": "Pop",
    "LO": "Lock",
    "MH": "Middle Hip-hop",
    "LH": "LA style Hip-hop",
    "HO": "House",
    "WA": "Waack",
    "KR": "Krump",
    "JS": "Street Jazz",
    "JB": "Ballet Jazz",
}

# Order of the paper's Table 9.
TEST_MUSIC_IDS = ("mLH4", "mKR2", "mBR0", "mLO2", "mJB5", "mWA0", "mJS3", "mMH3", "mHO5", "mPO1")

DOWNLOAD_HINT = (
    "download the AIST Dance DB music (wav or mp3) from https://aistdancedb.ongaaccel.jp/database_download/ "
    "and pass the folder with --aist-music DIR"
)

_MUSIC_ID = re.compile(r"^m([A-Z]{2})([0-5])$")
_AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a", ".flac", ".ogg")


@dataclass(frozen=True)
class AistTrack:
    music_id: str
    genre_code: str
    genre: str
    bpm: int


def is_music_id(text: str) -> bool:
    match = _MUSIC_ID.match(text)
    return bool(match) and match.group(1) in GENRES


def tempo(music_id: str) -> int:
    """AIST's tempo rule: 80 + 10k BPM for every genre except House (110 + 5k)."""
    match = _MUSIC_ID.match(music_id)
    if not match or match.group(1) not in GENRES:
        raise ConfigError(f"{music_id!r} is not an AIST music id", "ids look like mBR0 (genre code + 0..5)")
    code, k = match.group(1), int(match.group(2))
    return 110 + 5 * k if code == "HO" else 80 + 10 * k


def track(music_id: str) -> AistTrack:
    bpm = tempo(music_id)
    code = music_id[1:3]
    return AistTrack(music_id=music_id, genre_code=code, genre=GENRES[code], bpm=bpm)


def test_tracks() -> list[AistTrack]:
    """The 10 AIST test-split tracks, in the order of the paper's Table 9."""
    return [track(m) for m in TEST_MUSIC_IDS]


def find_music(music_dir: Path, music_id: str) -> Path:
    """The audio file of `music_id` in the user's AIST music folder."""
    music_dir = Path(music_dir)
    if not music_dir.is_dir():
        raise MediaError(f"AIST music folder {music_dir} does not exist", DOWNLOAD_HINT)
    for suffix in _AUDIO_SUFFIXES:
        for name in (music_id + suffix, music_id + suffix.upper()):
            if (music_dir / name).is_file():
                return music_dir / name
    raise MediaError(f"no audio file for {music_id} in {music_dir} (looked for {music_id}.wav/.mp3)", DOWNLOAD_HINT)
