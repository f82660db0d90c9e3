"""The stages of a run, each reading only what the one before wrote (files + the store).

`register` (bring your own videos), `generate` (a generator over jobs -> mp4s), `score` (a judge's
answers), `measure` (objective metrics); `summary` is the one summary type they all return, `executor`
where their jobs' work runs (this process, or Ray actors: `ray_executor`, `ray_actors`).
"""
