"""Views for people over the stored data: the static HTML report and its timeline."""
