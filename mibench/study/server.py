"""The raters' web app of one study (FastAPI, served by uvicorn): blinded A/B pages, votes written at once.

Routes (the token of a rater's link is the only credential; no request names a file, a job or a model):
- GET  /r/{token}                       the rater page (`templates/rater.html` + inline rater.css/rater.js);
                                        404 "not found" for an unknown token or one of another study;
- GET  /r/{token}/state                 JSON: `total`, `done`, `finished`, `allow_tie`, `questions` ({id,
                                        text}), the current `pair` ({id, index from 1, left/right video URLs
                                        in the rater's order, `music`: the URL whose audio is played, the
                                        longer of the two videos, left when they are as long, so neither
                                        video is cut short by the music}) and
                                        the `question` to answer next ({id, text, index from 1}) - resumable;
- POST /r/{token}/vote                  JSON {pair_id, question_id, side}: stored by `votes.record_vote` ->
                                        200 and the new state; 4xx {"detail": why} and nothing written else;
- GET  /media/{token}/{pair_id}/{side}  the video on `side` (left|right) of that pair, found in the store;
                                        Range requests are answered 206 (Starlette's FileResponse: seeking);
                                        no Last-Modified or ETag, which would tell the models (or a 'same'
                                        check's two sides) apart by their files' times.

The state never says which video is which model. Pages carry a Content-Security-Policy header that lets
only the inline script and style run (by hash), media and fetches from the same origin; text reaches the
page through Jinja autoescape or `textContent`. Each request opens the run's store and closes it after.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from pydantic import BaseModel

from mibench.media.video import probe
from mibench.store import Store
from mibench.study.model import Study, StudyError, load_study
from mibench.study.votes import media_path, progress, record_vote

TEMPLATES = Path(__file__).resolve().parent / "templates"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class Vote(BaseModel):
    pair_id: str
    question_id: str
    side: str


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _page() -> tuple[str, str]:
    """The rater page (the same for every rater: the script reads its token from the URL) and its CSP."""
    script = (TEMPLATES / "rater.js").read_text(encoding="utf-8")
    style = (TEMPLATES / "rater.css").read_text(encoding="utf-8")
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
    html = env.get_template("rater.html").render(script=Markup(script), style=Markup(style))
    csp = (f"default-src 'none'; script-src {_sha256(script)}; style-src {_sha256(style)}; media-src 'self'; "
           "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, csp


def _state(store: Store, token: str, study: Study) -> dict:
    """What the page needs to show a rater's next question (see the module docstring)."""
    now = progress(store, token, study_id=study.id)
    questions = [{"id": q["id"], "text": q["text"]} for q in study.questions]
    state = {"total": now["total"], "done": now["done"], "finished": now["pair_id"] is None,
             "allow_tie": study.allow_tie, "questions": questions, "pair": None, "question": None}
    if now["pair_id"] is not None:
        media = f"/media/{token}/{now['pair_id']}"
        lengths = {side: _seconds(media_path(store, token, now["pair_id"], side, study_id=study.id))
                   for side in ("left", "right")}
        music = "right" if lengths["right"] > lengths["left"] else "left"
        state["pair"] = {"id": now["pair_id"], "index": now["index"] + 1, "left": f"{media}/left",
                         "right": f"{media}/right", "music": f"{media}/{music}"}
        index = [q["id"] for q in questions].index(now["question_id"])
        state["question"] = {**questions[index], "index": index + 1}
    return state


@lru_cache(maxsize=1024)
def _seconds(path: Path) -> float:
    """A video's length in seconds (its header)."""
    return probe(path).duration


def make_app(run_dir: Path, study_id: str) -> FastAPI:
    """The web app of study `study_id` of the run in `run_dir` (StudyError when there is no such study)."""
    run_dir = Path(run_dir)
    store = Store.open(run_dir)
    try:
        study = load_study(store, study_id)
    finally:
        store.close()
    html, csp = _page()
    app = FastAPI(title="mibench study", docs_url=None, redoc_url=None, openapi_url=None)

    @contextmanager
    def opened() -> Iterator[Store]:
        """The run's store for one request, opened and closed in the worker thread that serves it (a SQLite
        connection belongs to one thread; a FastAPI dependency may enter and leave in different threads)."""
        store = Store.open(run_dir)
        try:
            yield store
        finally:
            store.close()

    @app.exception_handler(StudyError)
    def refused(request: Request, exc: StudyError) -> JSONResponse:
        return JSONResponse({"detail": exc.line()}, status_code=exc.status)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update({"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                                 "Cache-Control": "no-store"})
        for name in ("last-modified", "etag"):  # file times would tell the videos apart
            if name in response.headers:
                del response.headers[name]
        return response

    @app.get("/r/{token}", response_class=HTMLResponse)
    def page(token: str):
        try:
            with opened() as store:
                progress(store, token, study_id=study.id)
        except StudyError:
            return PlainTextResponse("not found", status_code=404)
        return HTMLResponse(html, headers={"Content-Security-Policy": csp})

    @app.get("/r/{token}/state")
    def state(token: str) -> dict:
        with opened() as store:
            return _state(store, token, study)

    @app.post("/r/{token}/vote")
    def vote(token: str, body: Vote) -> dict:
        with opened() as store:
            record_vote(store, token, body.pair_id, body.question_id, body.side, study_id=study.id)
            return _state(store, token, study)

    @app.get("/media/{token}/{pair_id}/{side}")
    def media(token: str, pair_id: str, side: str) -> FileResponse:
        with opened() as store:
            path = media_path(store, token, pair_id, side, study_id=study.id)
        return FileResponse(path, media_type="video/mp4")

    return app


def serve(run_dir: Path, study_id: str, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False) -> None:
    """Serve a study's rater pages until interrupted; binding beyond this machine needs `allow_remote`."""
    if host not in LOCAL_HOSTS and not allow_remote:
        raise StudyError(f"refusing to serve the study on {host}: rater links would be reachable from other "
                         "machines", "serve on 127.0.0.1 behind an HTTPS proxy, or allow remote access explicitly")
    app = make_app(run_dir, study_id)
    if host not in LOCAL_HOSTS:
        print(f"warning: serving study {study_id} on {host}:{port} over plain HTTP: anyone who can reach it and "
              "holds a rater link can vote; put it behind HTTPS", file=sys.stderr, flush=True)
    print(f"serving study {study_id} at http://{host}:{port}/r/<token> (Ctrl-C stops; every vote is saved at once)",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
