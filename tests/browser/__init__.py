"""End-to-end tests: the served app in Debian's chromium, driven by Playwright."""
