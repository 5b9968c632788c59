"""What the report page says when it cannot answer: Japanese first, then one English line, like the page.

Every error of a path under /reports/ is rendered with templates/error.html, the ones aiohttp raises itself
(unknown path 404, wrong method 405, a form it cannot read 400/413) and unexpected failures (500, without
details) included. The CSV routes are for programs: they keep aiohttp's plain-text answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hibiki_runtime.errors import InvalidArgument

from hibiki_reporting.domain.validation import MAX_RANGE_DAYS

LOGIN_LINK = ("/reports/login", "ログイン画面へ (log in)")
PAGE_LINK = ("/reports/", "レポートに戻る (back to the report)")


@dataclass(frozen=True)
class ErrorText:
    status: int
    heading: str
    lines: tuple[str, ...]
    english: str
    link: str
    link_text: str


# status → heading, explanation, English line (when the error carries none of its own).
_BY_STATUS = {
    400: ("入力内容を確認してください", "入力内容が正しくありません。", "Bad request."),
    401: (
        "ログインしてください",
        "ログインしていないか、ログインの有効期限が切れました。もう一度ログインしてください。",
        "Please log in again.",
    ),
    403: (
        "この操作はできません",
        "このトークンでは操作できないか、画面の有効期限が切れました。"
        "ページを再読み込みしてもう一度お試しください。",
        "Forbidden.",
    ),
    404: (
        "ページが見つかりません",
        "お探しのページは見つかりませんでした。アドレスを確認してください。",
        "Not found.",
    ),
    405: (
        "この操作はできません",
        "このページはこの方法では開けません（許可されていないメソッドです）。",
        "Method not allowed.",
    ),
    413: (
        "入力内容が大きすぎます",
        "送信された内容が大きすぎます。入力内容を確認してください。",
        "Request too large.",
    ),
    500: (
        "エラーが発生しました",
        "サーバーでエラーが発生しました。しばらくしてからもう一度お試しください。",
        "Internal server error.",
    ),
}
_OTHER_CLIENT_ERROR = (
    "リクエストを処理できませんでした",
    "リクエストを処理できませんでした。入力内容を確認してください。",
    "The request could not be processed.",
)
_FIELDS = {
    "from": "開始日",
    "to": "終了日",
    "trace_from": "開始日",
    "trace_to": "終了日",
    "dialed_number": "着信番号",
    "caller_number": "発信者番号",
}


def error_text(status: int, english: str = "") -> ErrorText:
    """The page for an HTTP error status; `english` is the error's own message, when it has a useful one."""
    if status >= 500:
        status, english = 500, ""  # never details of a failure
    heading, line, default = _BY_STATUS.get(status, _OTHER_CLIENT_ERROR)
    link, link_text = LOGIN_LINK if status == 401 else PAGE_LINK
    return ErrorText(status, heading, (line,), english or default, link, link_text)


def invalid_input_text(error: InvalidArgument) -> ErrorText:
    """400 for a bad date range or number: one Japanese line per invalid field, the English message after."""
    lines = tuple(dict.fromkeys(_violation_line(v.field, v.description) for v in error.violations))
    heading = _BY_STATUS[400][0]
    return ErrorText(400, heading, lines, error.message, *PAGE_LINK)


def _violation_line(field: str, description: str) -> str:
    name = _FIELDS.get(field, field)
    if description.startswith("expected a date"):
        return f"{name}は YYYY-MM-DD の形式の日付で指定してください（例: 2026-11-09）。"
    if description.startswith("must not be before"):
        return "終了日は開始日と同じ日か、それより後の日にしてください。"
    if description.startswith("a range covers at most"):
        return f"期間は{MAX_RANGE_DAYS}日以内で指定してください。"
    if description.startswith("expected a phone number"):
        return f"{name}は 03-1234-5678、090-1234-5678 のような電話番号で指定してください。"
    return f"{name}の指定が正しくありません。"
