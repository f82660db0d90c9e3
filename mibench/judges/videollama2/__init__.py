"""VideoLLaMA 2.1-7B-AV as a judge: a re-implementation that loads the official checkpoint.

    judge = VideoLLaMA2Judge.from_pretrained("DAMO-NLP-SG/VideoLLaMA2.1-7B-AV")  # or .tiny()
    encoded = judge.encode(Path("dance.mp4"))            # frames + music, encoded once
    answers = judge.ask(encoded, questions)              # greedy text, as the paper
    answers = judge.ask(encoded, questions, mode="expected")  # + score distribution over 0..10

Modules: preprocess (frames, audio, fbank), beats, connector (STC + audio MLP), model (assembly and
splice), load (strict checkpoint loading), chat (prompt), decode (greedy, expected score), tiny
(preset), judge (the public class). Porting facts: ../shared/notes/videollama2.md.
"""

from mibench.judges.videollama2.judge import Answer, EncodedVideo, MediaInputs, VideoLLaMA2Judge

__all__ = ["Answer", "EncodedVideo", "MediaInputs", "VideoLLaMA2Judge"]
