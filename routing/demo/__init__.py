"""The offline demo: generated image–caption items and a pixels-only judge behind the chat API."""

from routing.demo.captions import Claim, parse_caption
from routing.demo.judge import MODEL_NAME, DemoJudge
from routing.demo.judge_server import DemoJudgeServer
from routing.demo.scenes import LABELS, DemoItem, SceneGenerator, generate_items

__all__ = [
    "LABELS",
    "MODEL_NAME",
    "Claim",
    "DemoItem",
    "DemoJudge",
    "DemoJudgeServer",
    "SceneGenerator",
    "generate_items",
    "parse_caption",
]
