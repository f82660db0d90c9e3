"""Synthetic media with known beats (numpy + OpenCV, deterministic): a drum track and a dancer video.

They give metrics tests and `mibench demo` real signals whose answers are known:

- `drum_track(bpm, seconds)`: kick on every beat, snare on beats 2 and 4, hi-hat on eighths and a
  one-note-per-beat bass line; beats at `k * 60 / bpm` s from 0 (`beat_times`).
- `dancer_video(bpm, seconds, mode=...)`: every joint of the figure is a fixed smooth function of one
  scalar `c(t) = cos(pi * x(t))`, so the figure's motion speed is exactly zero where `x(t)` is a whole
  number (pose extremes, "kinematic beats", `motion_beat_times`) and nowhere else:
  "on_beat": `x = t * bpm / 60 - phase_beats` (extremes on the music beats, shifted by `phase_beats`);
  "off_beat": `x` runs at `sqrt(2)` times the music tempo with a seeded, smoothly wobbling rate, so
  its extremes ignore the beat; "still": a fixed pose, identical frames.
  `figure="stick"` draws capsules; `figure="person"` a cartoon person (face, shirt, trousers, shoes) that
  2-D pose estimators such as mediapipe detect, moved by the same c(t).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mibench.errors import ConfigError

MODES = ("on_beat", "off_beat", "still")
FIGURES = ("stick", "person")
OFF_BEAT_TEMPO_RATIO = math.sqrt(2.0)
_OFF_BEAT_WOBBLE = 0.3  # relative depth of the off-beat dancer's tempo modulation (< 1 keeps x increasing)
_BASS_LINE_HZ = (55.0, 55.0, 65.41, 49.0)  # A1 A1 C2 G1, one note per beat of each bar
_PEAK = 0.9
_BACKGROUND = (236, 234, 228)
_BODY = (40, 70, 160)
_HEAD = (205, 95, 60)
# the "person" figure (RGB)
_ROOM = (210, 205, 200)
_SKIN = (225, 170, 140)
_SKIN_SHADE = (185, 125, 100)
_SHIRT = (200, 60, 60)
_TROUSERS = (40, 60, 90)
_HAIR = (60, 40, 30)
_SHOE = (30, 28, 28)
_EYE_WHITE = (245, 245, 245)
_DARK = (35, 30, 30)
_LIPS = (165, 55, 65)
_SHIFT = 4  # OpenCV fixed-point bits: positions drawn to 1/16 px


# ---------------------------------------------------------------- music


def beat_times(bpm: float, seconds: float) -> np.ndarray:
    """Beat times `k * 60 / bpm` (s) for k = 0, 1, ... that fall before `seconds`."""
    count = math.ceil(round(seconds * bpm / 60.0, 9))
    return np.arange(count) * (60.0 / bpm)


def _decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (sr * tau))


def _kick(sr: int) -> np.ndarray:
    n = int(0.25 * sr)
    freq = 50.0 + 110.0 * _decay(n, sr, 0.03)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * _decay(n, sr, 0.09)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.2 * sr)
    tone = np.sin(2 * np.pi * 190.0 * np.arange(n) / sr) * _decay(n, sr, 0.04)
    return 0.4 * tone + 0.5 * rng.standard_normal(n) * _decay(n, sr, 0.05)


def _hihat(sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.06 * sr)
    return 0.5 * np.diff(rng.standard_normal(n + 1)) * _decay(n, sr, 0.012)


def _bass(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    tone = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t)
    return tone * _decay(t.size, sr, 0.25)


def _add(track: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    piece = sound[: max(track.size - start, 0)]
    track[start : start + piece.size] += gain * piece


def drum_track(bpm: float, seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A float32 mono drum-and-bass loop at `bpm`, `round(seconds * sr)` samples, peak 0.9."""
    rng = np.random.default_rng(seed)
    track = np.zeros(round(seconds * sr))
    kick, beat = _kick(sr), 60.0 / bpm
    for k, t in enumerate(beat_times(bpm, seconds)):
        start = round(t * sr)
        _add(track, kick, start, 1.0)
        _add(track, _bass(_BASS_LINE_HZ[k % 4], beat, sr), start, 0.35)
        if k % 2 == 1:
            _add(track, _snare(sr, rng), start, 0.6)
    for k, t in enumerate(beat_times(2 * bpm, seconds)):  # eighths, the off-beat ones softer
        _add(track, _hihat(sr, rng), round(t * sr), 0.25 if k % 2 == 0 else 0.08)
    peak = np.abs(track).max(initial=0.0)
    return (track * (_PEAK / peak if peak > 0 else 1.0)).astype(np.float32)


# ---------------------------------------------------------------- dancer


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown dancer mode {mode!r}", f"use one of {', '.join(MODES)}")


def _check_figure(figure: str) -> None:
    if figure not in FIGURES:
        raise ConfigError(f"unknown dancer figure {figure!r}", f"use one of {', '.join(FIGURES)}")


def _beat_position(t: np.ndarray, bpm: float, mode: str, phase_beats: float, seed: int) -> np.ndarray:
    """x(t): the dancer's pose is extreme (speed 0) exactly where x is a whole number."""
    if mode == "on_beat":
        return t * bpm / 60.0 - phase_beats
    if mode == "still":
        return np.full_like(t, 0.5)
    rng = np.random.default_rng(seed)
    start, wobble_hz, wobble_phase = rng.uniform(0, 1), rng.uniform(0.2, 0.4), rng.uniform(0, 2 * np.pi)
    omega = 2 * np.pi * wobble_hz
    wobble = _OFF_BEAT_WOBBLE * (np.sin(omega * t + wobble_phase) - np.sin(wobble_phase)) / omega
    return start + OFF_BEAT_TEMPO_RATIO * bpm / 60.0 * (t + wobble)


def motion_beat_times(
    bpm: float, seconds: float, mode: str = "on_beat", phase_beats: float = 0.0, *, seed: int = 0
) -> np.ndarray:
    """Ground-truth kinematic beat times (s, in [0, seconds)) of `dancer_video` with the same arguments.

    On-beat: `(k + phase_beats) * 60 / bpm`. Off-beat: solved from the seeded x(t). Still: none.
    """
    _check_mode(mode)
    if mode == "still":
        return np.zeros(0)
    grid = np.linspace(0.0, seconds, max(2, math.ceil(seconds * 1000)) + 1)
    x = _beat_position(grid, bpm, mode, phase_beats, seed)
    whole = np.arange(math.ceil(x[0]), math.floor(x[-1]) + 1)
    exact = mode == "on_beat"
    times = (whole + phase_beats) * 60.0 / bpm if exact else np.interp(whole, x, grid)
    return times[(times >= 0) & (times < seconds)]


def _joints(c: float, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Pixel capsules (start, end, radius) of the figure at pose scalar c in [-1, 1]; head last."""
    s = min(height, width)
    origin = np.array([width / 2, height / 2])

    def at(point: np.ndarray) -> np.ndarray:
        return origin + s * point

    def limb(start: np.ndarray, angle: float, length: float) -> np.ndarray:
        return start + length * np.array([math.sin(angle), math.cos(angle)])  # angle 0 = straight down

    hip = np.array([0.10 * c, 0.05 + 0.02 * c])
    lean = 0.12 * c
    neck = hip + 0.26 * np.array([math.sin(lean), -math.cos(lean)])
    head = hip + 0.36 * np.array([math.sin(lean), -math.cos(lean)])
    arm_l, arm_r = -(1.4 + 0.8 * c), 1.4 - 0.8 * c
    leg_l, leg_r = -(0.25 + 0.2 * c), 0.25 - 0.2 * c
    elbow_l, elbow_r = limb(neck, arm_l, 0.14), limb(neck, arm_r, 0.14)
    knee_l, knee_r = limb(hip, leg_l, 0.2), limb(hip, leg_r, 0.2)
    bones = [
        (hip, neck),
        (neck, elbow_l),
        (elbow_l, limb(elbow_l, arm_l - 0.5 * c, 0.13)),
        (neck, elbow_r),
        (elbow_r, limb(elbow_r, arm_r - 0.5 * c, 0.13)),
        (hip, knee_l),
        (knee_l, limb(knee_l, leg_l + 0.3 * c, 0.2)),
        (hip, knee_r),
        (knee_r, limb(knee_r, leg_r + 0.3 * c, 0.2)),
    ]
    capsules = [(at(p), at(q), 0.02 * s + 1.0) for p, q in bones]
    return [*capsules, (at(head), at(head), 0.065 * s)]


def _draw_capsule(canvas: np.ndarray, p: np.ndarray, q: np.ndarray, radius: float, color: tuple[int, int, int]) -> None:
    """Fill the pixels whose centres lie within `radius` of segment pq (a disc when p == q)."""
    height, width = canvas.shape[:2]
    x0, y0 = (max(int(v), 0) for v in np.floor(np.minimum(p, q) - radius))
    x1, y1 = (int(v) for v in np.ceil(np.maximum(p, q) + radius) + 1)
    x1, y1 = min(x1, width), min(y1, height)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
    d = q - p
    along = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
    inside = (xs - p[0] - along * d[0]) ** 2 + (ys - p[1] - along * d[1]) ** 2 <= radius**2
    canvas[y0:y1, x0:x1][inside] = color


def _render(c: float, height: int, width: int) -> np.ndarray:
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = _BACKGROUND
    *bones, head = _joints(c, height, width)
    for p, q, radius in bones:
        _draw_capsule(canvas, p, q, radius, _BODY)
    _draw_capsule(canvas, *head, _HEAD)
    return canvas


def _unit(angle: float) -> np.ndarray:
    """Direction at `angle` rad from straight down, positive towards +x."""
    return np.array([math.sin(angle), math.cos(angle)])


def _person_pose(c: float) -> dict[str, np.ndarray | float]:
    """The person's key points at pose scalar c, in units of min(H, W) from the frame centre (y down)."""
    hip = np.array([0.06 * c, 0.04 + 0.015 * c])
    lean = 0.10 * c
    up, across = -_unit(lean), np.array([math.cos(lean), math.sin(lean)])
    shoulder = hip + 0.283 * up
    pose: dict[str, np.ndarray | float] = {"hip": hip, "shoulder": shoulder, "across": across, "tilt": 0.05 * c}
    pose["head"] = shoulder + 0.098 * up
    sides = (("l", -1.0, -(1.3 + 0.8 * c), -(0.12 + 0.1 * c)), ("r", 1.0, 1.3 - 0.8 * c, 0.12 - 0.1 * c))
    for side, sign, arm, leg in sides:  # arm and leg angles from straight down
        pose[f"shoulder_{side}"] = shoulder + 0.085 * sign * across
        pose[f"elbow_{side}"] = pose[f"shoulder_{side}"] + 0.15 * _unit(arm)
        pose[f"wrist_{side}"] = pose[f"elbow_{side}"] + 0.13 * _unit(arm - 0.5 * c)
        pose[f"hand_{side}"] = pose[f"elbow_{side}"] + 0.15 * _unit(arm - 0.5 * c)
        pose[f"hip_{side}"] = hip + 0.042 * sign * across
        pose[f"knee_{side}"] = pose[f"hip_{side}"] + 0.17 * _unit(leg)
        pose[f"ankle_{side}"] = pose[f"knee_{side}"] + 0.16 * _unit(leg + 0.15 * c)
        pose[f"toe_{side}"] = pose[f"ankle_{side}"] + np.array([0.02 * sign, 0.02])
    return pose


def _render_person(c: float, height: int, width: int) -> np.ndarray:
    """The cartoon person at pose scalar c: face, neck, shirt torso and arms, trousers, shoes."""
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = _ROOM
    s = min(height, width)
    origin = np.array([width / 2, height / 2])
    pose = _person_pose(c)
    one = 1 << _SHIFT

    def px(point: np.ndarray) -> tuple[int, int]:
        x, y = (origin + s * point) * one
        return round(x), round(y)

    def size(a: float, b: float) -> tuple[int, int]:
        return max(round(s * a * one), one), max(round(s * b * one), one)

    def thick(width_s: float) -> int:
        return max(round(s * width_s), 1)

    def line(p: np.ndarray, q: np.ndarray, width_s: float, color: tuple[int, int, int]) -> None:
        cv2.line(canvas, px(p), px(q), color, thick(width_s), cv2.LINE_8, _SHIFT)

    def ellipse(
        centre: np.ndarray,
        a: float,
        b: float,
        angle: float,
        color: tuple[int, int, int],
        arc: tuple[float, float] = (0.0, 360.0),
        width_s: float | None = None,
    ) -> None:
        stroke = -1 if width_s is None else thick(width_s)
        cv2.ellipse(canvas, px(centre), size(a, b), math.degrees(angle), *arc, color, stroke, cv2.LINE_8, _SHIFT)

    # legs and shoes
    for side in "lr":
        sign = -1.0 if side == "l" else 1.0
        line(pose[f"hip_{side}"], pose[f"knee_{side}"], 0.053, _TROUSERS)
        line(pose[f"knee_{side}"], pose[f"ankle_{side}"], 0.046, _TROUSERS)
        ellipse(pose[f"toe_{side}"] + np.array([0.012 * sign, 0.0]), 0.045, 0.022, 0.0, _SHOE)
    # torso, neck
    shoulder, hip, across = pose["shoulder"], pose["hip"], pose["across"]
    corners = [shoulder - 0.098 * across, shoulder + 0.098 * across, hip + 0.067 * across, hip - 0.067 * across]
    cv2.fillPoly(canvas, [np.array([px(p) for p in corners], np.int32)], _SHIRT, cv2.LINE_8, _SHIFT)
    line(shoulder, pose["head"], 0.045, _SKIN)
    # head: hair behind, ears, face, fringe, eyes, brows, nose, mouth
    head, tilt = pose["head"], float(pose["tilt"])
    a, b = 0.053, 0.067

    right, down = np.array([math.cos(tilt), math.sin(tilt)]), np.array([-math.sin(tilt), math.cos(tilt)])

    def face(dx: float, dy: float) -> np.ndarray:  # head-local (units of the head's half axes) to figure units
        return head + right * dx * a + down * dy * b

    ellipse(face(0.0, -0.12), 1.12 * a, 1.02 * b, tilt, _HAIR)
    for sign in (-1.0, 1.0):
        ellipse(face(sign * 0.98, 0.0), 0.16 * a, 0.24 * b, tilt, _SKIN)
    ellipse(head, a, b, tilt, _SKIN)
    ellipse(face(0.0, -0.38), 0.98 * a, 0.6 * b, tilt, _HAIR, (180.0, 360.0))
    for sign in (-1.0, 1.0):
        ellipse(face(sign * 0.38, -0.08), 0.2 * a, 0.12 * b, tilt, _EYE_WHITE)
        ellipse(face(sign * 0.38, -0.08), 0.1 * a, 0.1 * b, tilt, _DARK)
        line(face(sign * 0.16, -0.3), face(sign * 0.6, -0.34), 0.07 * a, _DARK)
    line(face(0.0, -0.02), face(0.06, 0.26), 0.06 * a, _SKIN_SHADE)
    ellipse(face(0.0, 0.42), 0.3 * a, 0.13 * b, tilt, _LIPS, (0.0, 180.0), 0.07 * a)
    # arms over the torso: shirt sleeves, bare forearms, hands
    for side in "lr":
        line(pose[f"shoulder_{side}"], pose[f"elbow_{side}"], 0.05, _SHIRT)
        line(pose[f"elbow_{side}"], pose[f"wrist_{side}"], 0.042, _SKIN)
        ellipse(pose[f"hand_{side}"], 0.027, 0.027, 0.0, _SKIN)
    return canvas


def dancer_video(
    bpm: float,
    seconds: float,
    fps: float = 30,
    size: tuple[int, int] = (128, 128),
    *,
    mode: str = "on_beat",
    phase_beats: float = 0.0,
    seed: int = 0,
    figure: str = "stick",
) -> np.ndarray:
    """A dancer, RGB uint8 (T, H, W, 3) with T = round(seconds * fps) and size = (H, W).

    Frame i shows time i / fps. `phase_beats` only affects "on_beat", `seed` only "off_beat".
    Arms swing through about 90 degrees and the body sways (stick: 20%, person: 12% of the frame)
    between extremes. `figure` is "stick" (capsules) or "person" (a cartoon person for pose estimators).
    """
    _check_mode(mode)
    _check_figure(figure)
    render = _render if figure == "stick" else _render_person
    height, width = size
    t = np.arange(round(seconds * fps)) / fps
    poses = np.cos(np.pi * _beat_position(t, bpm, mode, phase_beats, seed))
    frames = np.empty((t.size, height, width, 3), np.uint8)
    for i, c in enumerate(poses):
        frames[i] = render(float(c), height, width)
    return frames
