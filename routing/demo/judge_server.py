"""The demo judge behind the OpenAI-compatible interface, so the app reaches it like any judge.

``python -m routing.demo.judge_server [--host 127.0.0.1] [--port 8002] [--tokens-per-second 50]``

A request must carry one image (a data: URL in an ``image_url`` part) and the caption, as the
``image_caption`` prompt sends it (a ``Caption: ...`` line; otherwise any text line in the demo
grammar). The reply is the demo judge's step-by-step reasoning, streamed at the configured pace.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Mapping, Sequence

from routing.demo.captions import parse_caption
from routing.demo.judge import MODEL_NAME, DemoJudge
from routing.judges.errors import JudgeInputError
from routing.judges.images import decode_data_url
from routing.replay_server import ChatCompletionServer, ChatRequest, Fault, Reply, ReplyError


def find_caption(texts: Sequence[str]) -> str | None:
    """The caption in the prompt: a ``Caption:`` line, else the first line in the demo grammar."""
    lines = [line.strip() for text in texts for line in text.splitlines()]
    for line in lines:
        if line.lower().startswith("caption:"):
            return line.split(":", 1)[1].strip()
    return next((line for line in lines if parse_caption(line) is not None), None)


class DemoJudgeServer(ChatCompletionServer):
    """Serves ``DemoJudge`` replies; same pacing, accounting and fault options as the replay server."""

    model_name = MODEL_NAME

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens_per_second: float = 50.0,
        tokens_per_chunk: int = 1,
        faults: Mapping[str, Sequence[Fault]] | None = None,
        judge: DemoJudge | None = None,
    ):
        super().__init__(host=host, port=port, tokens_per_second=tokens_per_second,
                         tokens_per_chunk=tokens_per_chunk, faults=faults)
        self.judge = judge

    def respond(self, request: ChatRequest) -> Reply:
        images = [url for url in request.image_urls() if url.startswith("data:")]
        caption = find_caption(request.user_texts())
        if len(images) != 1 or caption is None:
            raise ReplyError(400, "the demo judge needs exactly one data: URL image and a 'Caption: ...' line")
        try:
            image = decode_data_url(images[0])
            text = (self.judge or DemoJudge()).reason(image, caption)
        except (JudgeInputError, ValueError, OSError) as exc:
            raise ReplyError(400, f"cannot read the image: {exc}") from exc
        return Reply(text, request.header_record_id)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routing.demo.judge_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--tokens-per-second", type=float, default=50.0, help="pace; 0 or inf = instant")
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    server = DemoJudgeServer(host=args.host, port=args.port, tokens_per_second=args.tokens_per_second,
                             tokens_per_chunk=args.tokens_per_chunk)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"demo judge ({MODEL_NAME}, pixels only) at {server.base_url} ({args.tokens_per_second:g} tokens/s); "
          "Ctrl-C stops", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    server.serve_forever()
    print(json.dumps(server.stats()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
