"""The report page in the browser: login, the daily report with the funnel chart, CSV and caller trace."""

from hibiki_reporting.web.pages import add_report_page

__all__ = ["add_report_page"]
