"""Printing timings from tests, so slow real-component tests show what they measured."""


def report(request, line: str) -> None:
    """A timing on the terminal, even under output capture and -q."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
