"""Media I/O: audio decoding and resampling (`audio`), video probing, frame reading and mp4+aac writing
(`video`), and deterministic synthetic music and dancer videos with known beats (`synth`)."""
