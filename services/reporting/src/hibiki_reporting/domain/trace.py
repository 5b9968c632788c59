"""The seed's "the SMS did not arrive" checklist, answered from a caller's call and SMS records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .calendar import TOKYO
from .calls import CallOutcome, CallRecord
from .facts import SmsStatus
from .labels import carrier_label, reject_reason_label, sms_reason_label
from .sms import SmsRecord


class TraceVerdict(StrEnum):
    NO_CALL_FOUND = "no_call_found"
    NO_SMS_REQUESTED = "no_sms_requested"
    SMS_DELIVERED = "sms_delivered"
    SMS_ACCEPTED = "sms_accepted"
    SMS_UNDELIVERED = "sms_undelivered"
    SMS_REJECTED = "sms_rejected"
    SMS_FAILED = "sms_failed"
    SMS_PENDING = "sms_pending"
    CALL_REJECTED = "call_rejected"


_VERDICT_OF_STATUS = {
    SmsStatus.REQUESTED: TraceVerdict.SMS_PENDING,
    SmsStatus.ACCEPTED: TraceVerdict.SMS_ACCEPTED,
    SmsStatus.DELIVERED: TraceVerdict.SMS_DELIVERED,
    SmsStatus.UNDELIVERED: TraceVerdict.SMS_UNDELIVERED,
    SmsStatus.REJECTED: TraceVerdict.SMS_REJECTED,
    SmsStatus.FAILED: TraceVerdict.SMS_FAILED,
}


@dataclass(frozen=True)
class TraceAnswer:
    verdict: TraceVerdict
    summary: str


def answer_trace(calls: Sequence[CallRecord], sms: Sequence[SmsRecord]) -> TraceAnswer:
    """Verdict on the latest SMS (or on the calls), with a sentence for support staff."""
    if not calls and not sms:
        return TraceAnswer(
            TraceVerdict.NO_CALL_FOUND,
            "指定期間にこの番号からの着信履歴はありません。お電話されていない可能性があります。",
        )
    if not sms and all(call.outcome is CallOutcome.REJECTED for call in calls):
        return TraceAnswer(
            TraceVerdict.CALL_REJECTED,
            f"着信履歴は{len(calls)}件ありますが、着信拒否の設定（非通知・着信拒否リスト）により"
            "ガイダンスの前に切断しています。",
        )
    if not sms:
        return TraceAnswer(TraceVerdict.NO_SMS_REQUESTED, _no_sms_sentence(calls))
    latest = max(sms, key=_requested_at)
    verdict = _VERDICT_OF_STATUS[latest.status]
    summary = _sent_sentence(latest) + _result_sentence(latest) + _click_sentence(latest)
    return TraceAnswer(verdict, summary + _earlier_delivery_sentence(latest, sms))


def _requested_at(record: SmsRecord) -> datetime:
    return record.request_time or record.first_seen


def _earlier_delivery_sentence(latest: SmsRecord, sms: Sequence[SmsRecord]) -> str:
    """A caller asking about a refused or failed SMS may well hold an earlier one that arrived."""
    if latest.status is SmsStatus.DELIVERED:
        return ""
    delivered = [r for r in sms if r is not latest and r.status is SmsStatus.DELIVERED]
    if not delivered:
        return ""
    earlier = max(delivered, key=_requested_at)
    when = _requested_at(earlier).astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    return f"なお、{when}に依頼した蓄積BOX「{_box_name(earlier)}」のSMSは端末への到達を確認しています。"


def _box_name(record: SmsRecord) -> str:
    return record.snapshot.box_name if record.snapshot and record.snapshot.box_name else record.box_number


def _no_sms_sentence(calls: Sequence[CallRecord]) -> str:
    """Calls without an SMS: the caller did not choose it, or the platform cut the call off first."""
    found = f"着信履歴は{len(calls)}件ありますが、SMSの送信履歴はありません。"
    not_chosen = "ガイダンスでSMS送信の番号を選ばれていない可能性があります。"
    capture = sum(1 for call in calls if call.outcome is CallOutcome.ABANDONED_IN_NUMBER_CAPTURE)
    if capture:
        # The caller did choose the SMS; the call ended while the caller was keying in a mobile number.
        chose = (
            "SMS送信を選ばれましたが、携帯電話番号の入力中に通話が終了したため送信していません。"
            "もう一度お電話いただき、携帯電話番号を最後まで入力するようご案内ください。"
        )
        prefix = "" if capture == len(calls) else f"うち{capture}件は"
        return found + prefix + chose
    lost = sum(1 for call in calls if call.outcome is CallOutcome.PLATFORM_FAILURE)
    if not lost:
        return found + not_chosen
    if lost == len(calls):
        return (
            found + "システム障害により通話が切断されました（お客様の操作によるものではありません）。"
            "お手数ですが、もう一度お電話いただくようご案内ください。"
        )
    return found + f"うち{lost}件はシステム障害により通話が切断されました。ほかの着信では" + not_chosen


def _sent_sentence(record: SmsRecord) -> str:
    when = _requested_at(record).astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    box = _box_name(record)
    # The caller's own number could not receive SMS, so the caller keyed in the number it went to.
    captured = "（通話中にお客様が入力した携帯電話番号宛て）" if record.recipient_captured else ""
    return f"{when}に蓄積BOX「{box}」のSMS送信依頼{captured}があります。"


def _click_sentence(record: SmsRecord) -> str:
    """The first open of the short link proves the SMS reached the caller, whatever the receipt says."""
    if record.first_click_time is None:
        return ""
    when = record.first_click_time.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    return f"{when}にSMSのリンクが開かれています（計{record.clicks}回）。"


def _result_sentence(record: SmsRecord) -> str:
    carrier = carrier_label(record.carrier)
    match record.status:
        case SmsStatus.DELIVERED:
            return (
                f"{carrier}から端末への到達を確認しました。希望されたSMSと内容に相違がないかご確認ください。"
            )
        case SmsStatus.ACCEPTED:
            return (
                f"{carrier}への送信は完了していますが、到達結果はまだ届いていません。"
                "端末で普段SMSを受信できているか、受信制限をかけていないかご確認ください。"
            )
        case SmsStatus.UNDELIVERED:
            return (
                f"{carrier}から不達の通知がありました（{sms_reason_label(record.status, record.reason)}）。"
                "端末で受信制限をかけていないかご確認ください。"
            )
        case SmsStatus.REJECTED:
            return _REJECTED.get(record.reason) or (
                f"送信できない番号のため送信していません（{reject_reason_label(record.reason)}）。"
                "SMSはdocomo・au・SoftBank・楽天モバイルの携帯電話番号にのみ送信できます。"
            )
        case SmsStatus.FAILED:
            return _FAILED.get(record.reason, "送信に失敗しました。") + "サポートまでご連絡ください。"
        case _:
            return "送信結果を待っています。"


# Refusals that are not about the kind of number: each says what happened and what the caller can do.
_REJECTED = {
    "opted_out": (
        "この番号は受信拒否（配信停止）に登録されているため送信していません。"
        "お客様のお申し出があれば登録を解除できます。"
    ),
    "recipient_rate_limited": (
        "同じ番号への短時間の送信回数が上限に達したため送信していません。"
        "時間をおいてもう一度お電話いただくようご案内ください。"
    ),
    "unknown_box": (
        "送信するSMSの蓄積BOXが見つからないため送信していません（設定の不備です）。"
        "ルーティング設定のSMS送信先をご確認ください。"
    ),
    "withheld_number": (
        "非通知でのお電話のため送信先の番号がわからず、送信していません。"
        "番号を通知してもう一度お電話いただくようご案内ください。"
    ),
}
_FAILED = {
    "retries_exhausted": "携帯電話会社への送信を繰り返し試みましたが、送信できませんでした。",
    "carrier_permanent_error": "携帯電話会社が送信を受け付けませんでした。",
    "uncertain_after_crash": (
        "システム障害のため、送信できたかどうかを確認できませんでした（届いている可能性もあります）。"
    ),
}
