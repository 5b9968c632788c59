"""The seed's "the SMS did not arrive" checklist, answered from a caller's call and SMS records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from .calendar import TOKYO
from .calls import CallOutcome, CallRecord
from .facts import SmsStatus
from .labels import carrier_label, reject_reason_label
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
    latest = max(sms, key=lambda record: record.request_time or record.first_seen)
    verdict = _VERDICT_OF_STATUS[latest.status]
    return TraceAnswer(verdict, _sent_sentence(latest) + _result_sentence(latest) + _click_sentence(latest))


def _no_sms_sentence(calls: Sequence[CallRecord]) -> str:
    """Calls without an SMS: the caller did not choose it, or the platform cut the call off first."""
    found = f"着信履歴は{len(calls)}件ありますが、SMSの送信履歴はありません。"
    not_chosen = "ガイダンスでSMS送信の番号を選ばれていない可能性があります。"
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
    when = (record.request_time or record.first_seen).astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    box = record.snapshot.box_name if record.snapshot and record.snapshot.box_name else record.box_number
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
                f"{carrier}から不達の通知がありました（{record.reason}）。"
                "端末で受信制限をかけていないかご確認ください。"
            )
        case SmsStatus.REJECTED:
            return (
                f"送信できない番号のため送信していません（{reject_reason_label(record.reason)}）。"
                "SMSはdocomo・au・SoftBank・楽天モバイルの携帯電話番号にのみ送信できます。"
            )
        case SmsStatus.FAILED:
            return f"送信に失敗しました（{record.reason}）。サポートまでご連絡ください。"
        case _:
            return "送信結果を待っています。"
