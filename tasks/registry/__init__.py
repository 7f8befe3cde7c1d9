"""The registry site, driven with Playwright: accounts, sessions, login, search forms, the viewer
and the PDF. Import the modules themselves: this package imports nothing, so that a module that
needs only `matching` does not load the browser."""
