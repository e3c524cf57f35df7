"""The dashboard: a read-only web application over the store, and the static report's views.

:mod:`.filters` parses what a page shows, :mod:`.data` reads it (SQLAlchemy Core over the store's
tables), :mod:`.analysis` keeps the patterns' detection current without writing, :mod:`.pages`
turns both into each page's data, :mod:`.charts` and :mod:`measurements.views.timeline` lay out the
SVG charts, :mod:`.steps` reads one measurement's evidence, :mod:`.render` fills the Jinja2
templates (autoescaped), and :mod:`.app` serves them (Starlette, GET only). The static report
(:mod:`measurements.views.report`) renders the same templates into one file.
"""
