"""Debian's Chromium for the browser tests, started the way this offline machine needs."""

CHROMIUM = "/usr/bin/chromium"
# Background networking and component updates would try to reach Google's hosts, which the
# closed network refuses many times a second.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
