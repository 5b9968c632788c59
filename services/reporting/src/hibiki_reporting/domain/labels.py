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
