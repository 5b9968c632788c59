"""Japanese labels shown to tenants (CSV headers, support summaries)."""

from __future__ import annotations

REJECT_REASON_LABELS = {
    "invalid_number": "番号不正",
    "foreign_number": "海外の番号",
    "landline_number": "固定電話番号",
    "ip_phone_number": "IP電話番号",
    "toll_free_number": "フリーダイヤル等",
    "m2m_number": "M2M専用番号",
    "unsupported_carrier": "非対応キャリア",
    "unknown_box": "蓄積BOXなし",
    "opted_out": "受信拒否登録",
    "recipient_rate_limited": "送信回数制限",
    "withheld_number": "非通知",
    "unspecified": "理由不明",
    # A reason a newer sms-gateway names that this version does not know yet.
    "unknown": "理由不明(新しい理由)",
}

CARRIER_LABELS = {
    "docomo": "docomo",
    "kddi": "au(KDDI)",
    "softbank": "SoftBank",
    "rakuten": "楽天モバイル",
    # A carrier a newer sms-gateway names that this version does not know yet.
    "unknown": "不明",
}


def reject_reason_label(reason: str) -> str:
    return REJECT_REASON_LABELS.get(reason, reason)


def carrier_label(carrier: str) -> str:
    return CARRIER_LABELS.get(carrier, carrier or "不明")


# How a call ended (CallOutcome values), why the line closed (CallEnded reasons) and where an SMS stands, in
# the seed's vocabulary: the report page and the CSV show the same words. Looked up with a fallback to the
# value itself, so that a value added later shows as its name rather than breaking a page or an export.
CALL_OUTCOME_LABELS = {
    "in_progress": "通話中",
    "completed": "完了",
    "sms_sent": "SMS送信",
    "transferred": "転送",
    "abandoned": "途中放棄",
    "abandoned_capture": "途中放棄(携帯番号入力中)",
    "not_in_service": "番号未設定",
    "rejected": "着信拒否",
    "platform_failure": "システム障害で切断",
}
END_REASON_LABELS = {
    "caller_hangup": "発信者が切断",
    "system_hangup": "システムが切断",
    "transferred": "転送",
    "network_error": "回線エラー",
    "platform_failure": "システム障害",
    "unspecified": "理由不明",
    "unknown": "理由不明(新しい理由)",
}
SMS_STATUS_LABELS = {
    "requested": "送信依頼",
    "accepted": "送信完了",
    "delivered": "到達",
    "undelivered": "不達",
    "rejected": "送信不可",
    "failed": "送信失敗",
}


def call_outcome_label(outcome: str) -> str:
    return CALL_OUTCOME_LABELS.get(outcome, outcome)


def end_reason_label(reason: str) -> str:
    return END_REASON_LABELS.get(reason, reason)


def sms_status_label(status: str) -> str:
    return SMS_STATUS_LABELS.get(status, status)


# Receipt states of a non-delivery (SMPP stat) and reasons a send failed, as support staff say them.
UNDELIVERED_LABELS = {
    "UNDELIV": "端末に届けられませんでした",
    "EXPIRED": "有効期限内に届けられませんでした。電源が切れているか圏外だった可能性があります",
    "REJECTD": "携帯電話会社または端末が受信を拒否しました",
    "DELETED": "携帯電話会社で削除されました",
    "UNKNOWN": "理由不明",
}
FAILED_LABELS = {
    "retries_exhausted": "再送の上限に達しました",
    "carrier_permanent_error": "携帯電話会社が受け付けませんでした",
    "uncertain_after_crash": "システム障害のため送信できたか不明",
}


def sms_reason_label(status: str, reason: str) -> str:
    """Why an SMS stands where it stands, in Japanese; "" where the status says it all (sent, delivered)."""
    match status:
        case "rejected":
            return reject_reason_label(reason)
        case "undelivered":
            return UNDELIVERED_LABELS.get(reason, "理由不明")
        case "failed":
            return FAILED_LABELS.get(reason, "理由不明")
        case _:
            return ""
