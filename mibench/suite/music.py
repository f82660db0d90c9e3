"""Where a run's music comes from: the AIST test split in the user's AIST folder, or any folder of
audio files (synthetic music included)."""

from __future__ import annotations

from pathlib import Path

from mibench.errors import ConfigError, MediaError
from mibench.suite.aist import DOWNLOAD_HINT, find_music, test_tracks
from mibench.suite.jobs import Music, music_from_folder


def aist_test_music(music_dir: Path) -> list[Music]:
    """The 10 AIST test tracks, located in `music_dir`; names every missing track at once."""
    found, missing = [], []
    for t in test_tracks():
        try:
            found.append(Music(id=t.music_id, path=str(find_music(music_dir, t.music_id)), bpm=t.bpm, genre=t.genre))
        except MediaError:
            missing.append(t.music_id)
    if missing:
        raise MediaError(f"AIST music folder {music_dir} lacks {', '.join(missing)}", DOWNLOAD_HINT)
    return found


def resolve_music(aist_music: Path | None, music: Path | None) -> list[Music]:
    if aist_music and music:
        raise ConfigError("pass either --aist-music or --music, not both")
    if aist_music:
        return aist_test_music(aist_music)
    if music:
        if not Path(music).is_dir():
            raise ConfigError(f"--music folder {music} does not exist")
        tracks = music_from_folder(music)
        if not tracks:
            raise MediaError(f"no audio files (.wav, .mp3, .flac, .ogg, .m4a) in {music}")
        return tracks
    raise ConfigError("no music given",
                      "pass --aist-music DIR with the AIST test tracks (mBR0.wav, ...) or --music DIR with your own")
