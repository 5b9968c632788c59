"""The demo tenant `make run` provisions, like the seed's customer: what it says, its menu, its SMS box, and
the callers that simulated traffic sends to it. Pure data and builders; provisioning is in `provision`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hibiki.routing.v1 import routing_service_pb2 as routing_pb

TENANT = "demo"
DIALED_NUMBER = "+81312345678"
OPERATOR_NUMBER = "+81312340000"
UNKNOWN_NUMBER = "+81399990000"  # a number without a flow: callers hear "not in service"
SMS_DIGIT, OPERATOR_DIGIT, WRONG_DIGIT = "1", "2", "9"


@dataclass(frozen=True)
class AudioSpec:
    """An audio file (音声ファイル) and the original guidance (オリジナルガイダンス) that plays it."""

    file_name: str
    guidance_name: str
    text: str


MENU = AudioSpec(
    file_name="デモ_メインメニュー",
    guidance_name="デモ_振り分けガイダンス",
    text=(
        "お電話ありがとうございます。SMSでURLを受け取る場合は1を、"
        "オペレーターにおつなぎする場合は2を押してください。"
    ),
)
SMS_SENT = AudioSpec(
    file_name="デモ_SMS送信完了",
    guidance_name="デモ_SMS送信のお知らせ",
    text="SMSをお送りしました。お電話ありがとうございました。",
)


@dataclass(frozen=True)
class SmsBoxSpec:
    number: str
    name: str
    message_text: str
    url: str


SMS_BOX = SmsBoxSpec(
    number="100",
    name="デモ_資料請求URL",
    message_text="お問い合わせありがとうございます。資料は下記のURLからご覧いただけます。",
    url="https://example.com/hibiki-demo",
)
FLOW_NAME = "デモ_お問い合わせ窓口"


def demo_flow(menu_guidance_id: str, sms_sent_guidance_id: str) -> routing_pb.Flow:
    """The menu: 1 → SMS box with the URL, then the announcement; 2 → operator; wrong or no input → the
    seed's default guidances, then the prompt again; past three of either the call is hung up (fallback)."""
    system_default = routing_pb.GuidanceChoice(kind=routing_pb.GUIDANCE_CHOICE_KIND_SYSTEM_DEFAULT)
    menu = routing_pb.MenuNode(
        prompt_guidance_id=menu_guidance_id,
        max_digits=1,
        digit_targets={SMS_DIGIT: "sms", OPERATOR_DIGIT: "operator"},
        invalid_input_guidance=system_default,
        input_timeout_guidance=system_default,
    )
    return routing_pb.Flow(
        name=FLOW_NAME,
        dialed_number=DIALED_NUMBER,
        entry_node_id="menu",
        nodes=[
            routing_pb.Node(id="menu", name="メインメニュー", menu=menu),
            routing_pb.Node(
                id="sms",
                name="URLをSMSで送信",
                send_sms=routing_pb.SendSmsNode(
                    box_number=SMS_BOX.number, announcement_guidance_id=sms_sent_guidance_id
                ),
            ),
            routing_pb.Node(
                id="operator",
                name="オペレーター",
                transfer=routing_pb.TransferNode(destination=OPERATOR_NUMBER),
            ),
        ],
    )


# Who calls, by the SMSC simulator's development scenario (dev_scenario.json): most callers' phones take the
# SMS, some refuse it or never confirm, some are on a carrier that cannot receive, some call from a landline.
_CALLER_RANGES: tuple[tuple[str, int, int], ...] = (
    # (prefix, digits after it, weight)
    ("+8190", 8, 40),  # docomo (au from +81908): delivered
    ("+8180", 8, 20),  # SoftBank (au from +81808): delivered
    ("+8170", 8, 10),  # Rakuten Mobile (au from +81708): delivered
    ("+8190100", 5, 10),  # docomo, the handset refuses SMS: undelivered
    ("+8190200", 5, 5),  # au: no receipt within the validity period: undelivered (expired)
    ("+8190600", 5, 5),  # a carrier that cannot receive SMS: rejected
    ("+813", 8, 10),  # a Tokyo landline: rejected, not a mobile number
)
CALLER_POOL_SIZE = 2000  # large enough that the per-recipient SMS cooldown rarely applies


def caller_numbers(seed: int = 0, size: int = CALLER_POOL_SIZE) -> list[str]:
    """A deterministic pool of caller numbers drawn from `_CALLER_RANGES` by weight."""
    rng = random.Random(seed)
    weights = [weight for _, _, weight in _CALLER_RANGES]
    numbers = []
    for _ in range(size):
        prefix, digits, _weight = rng.choices(_CALLER_RANGES, weights)[0]
        # No leading zero: 090-0…, 080-0… (0800 is toll-free) and 03-0… are not numbers anyone has.
        numbers.append(f"{prefix}{rng.randrange(10 ** (digits - 1), 10**digits)}")
    return numbers


def traffic_scenario(seed: int = 0) -> dict[str, Any]:
    """The telephony simulator's scenario (JSON form) for callers of the demo number."""
    return {
        "numbers": {DIALED_NUMBER: {"right": SMS_DIGIT, "wrong": WRONG_DIGIT, "sms": True}},
        "unknown_numbers": [UNKNOWN_NUMBER],
        "caller_numbers": caller_numbers(seed),
        "mix": {
            "right": 50,
            "wrong_then_right": 15,
            "timeout_then_right": 10,
            "wrong": 5,
            "timeout": 5,
            "hangup": 10,
            "unknown": 5,
        },
        "withheld_ratio": 0.03,
    }
