"use strict";
// The rater page: loads the state of this link (`<page URL>/state`), shows the current pair's two muted
// videos with one shared music track (an <audio> element, the master clock), and posts one vote per
// question (`<page URL>/vote`). The videos follow the music on play, pause and seeking, and are moved
// back whenever they drift more than DRIFT seconds from it.
(() => {
  const DRIFT = 0.1;
  const KEYS = {"1": "left", ArrowLeft: "left", "2": "right", ArrowRight: "right", "0": "tie", t: "tie", T: "tie"};
  const base = location.pathname.replace(/\/+$/, "");
  const $ = (id) => document.getElementById(id);
  const main = $("study"), music = $("music"), seek = $("seek"), playButton = $("play");
  const videos = [$("left"), $("right")];
  const voteButtons = document.querySelectorAll(".answers button");
  let state = null, pairId = null, busy = false;

  const clock = (t) => `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, "0")}`;

  function sync() {
    const t = music.currentTime;
    for (const video of videos) {
      const end = Number.isFinite(video.duration) ? video.duration : Infinity;
      const target = Math.min(t, end);
      if (Math.abs(video.currentTime - target) > DRIFT) video.currentTime = target;
      if (!music.paused && video.paused && t < end) video.play().catch(() => {});
      if (music.paused && !video.paused) video.pause();
    }
    if (music.duration > 0 && Number.isFinite(music.duration)) {
      seek.value = String(Math.round(1000 * t / music.duration));
    }
    $("time").textContent = clock(t);
  }

  function toggle() {
    if (music.paused) {
      music.play().catch((error) => { $("error").textContent = `cannot play: ${error.message}`; });
    } else {
      music.pause();
    }
  }

  function load(pair) {
    music.pause();
    pairId = pair.id;
    videos[0].src = pair.left;
    videos[1].src = pair.right;
    music.src = pair.music;
    seek.value = "0";
    $("time").textContent = clock(0);
  }

  function finish(total) {
    music.pause();
    for (const media of [music, ...videos]) {
      media.removeAttribute("src");
      media.load();
    }
    $("stage").hidden = true;
    $("finished").hidden = false;
    $("progress").textContent = `All ${total} pairs rated.`;
  }

  function show(next) {
    state = next;
    main.dataset.pair = next.pair ? next.pair.id : "";
    main.dataset.question = next.question ? next.question.id : "";
    if (next.finished) {
      finish(next.total);
      return;
    }
    $("progress").textContent = `pair ${next.pair.index} of ${next.total}`;
    if (next.pair.id !== pairId) load(next.pair);
    $("question-count").textContent = `question ${next.question.index} of ${next.questions.length}`;
    $("question").textContent = next.question.text;
    $("vote-tie").hidden = $("tie-help").hidden = !next.allow_tie;
  }

  async function refresh() {
    const response = await fetch(`${base}/state`);
    if (response.ok) {
      show(await response.json());
    } else {
      $("progress").textContent = "This link is not valid.";
    }
  }

  async function vote(side) {
    if (busy || !state || state.finished || (side === "tie" && !state.allow_tie)) return;
    busy = true;
    voteButtons.forEach((button) => { button.disabled = true; });
    try {
      const response = await fetch(`${base}/vote`, {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({pair_id: state.pair.id, question_id: state.question.id, side}),
      });
      const data = await response.json();
      if (response.ok) {
        $("error").textContent = "";
        show(data);
      } else {
        $("error").textContent = typeof data.detail === "string" ? data.detail : "the answer was not accepted";
        await refresh();
      }
    } catch (error) {
      $("error").textContent = `not saved (${error.message}): try again`;
    } finally {
      busy = false;
      voteButtons.forEach((button) => { button.disabled = false; });
    }
  }

  for (const event of ["play", "pause", "seeking", "seeked", "timeupdate"]) music.addEventListener(event, sync);
  music.addEventListener("play", () => { playButton.textContent = "Pause"; });
  music.addEventListener("pause", () => { playButton.textContent = "Play"; });
  seek.addEventListener("input", () => {
    if (Number.isFinite(music.duration)) music.currentTime = music.duration * Number(seek.value) / 1000;
  });
  seek.addEventListener("change", () => seek.blur());
  playButton.addEventListener("click", () => { playButton.blur(); toggle(); });
  voteButtons.forEach((button) => button.addEventListener("click", () => {
    button.blur();
    vote(button.dataset.side);
  }));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.key === " ") {
      event.preventDefault();
      toggle();
      return;
    }
    const side = event.target === seek && event.key.startsWith("Arrow") ? undefined : KEYS[event.key];
    if (side) {
      event.preventDefault();
      vote(side);
    }
  });
  refresh();
})();
